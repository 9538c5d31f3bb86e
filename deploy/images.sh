#!/usr/bin/env bash
# Builds, on a machine whose Docker engine cannot pull from a registry, local
# stand-ins for the images the container tests and the compose quick start
# use, and then the profiled image from deploy/Dockerfile on them:
#
#   local/debian:bookworm              Debian minbase (debootstrap + docker import)
#   local/kafka:4.1.1                  a JRE from Debian, the broker jars deploy/kafka.sh
#                                      fetches, and apache/kafka's interface: KAFKA_*
#                                      variables become server.properties, and
#                                      /opt/kafka/bin/kafka-topics.sh and
#                                      kafka-broker-api-versions.sh exist
#   local/redis:7.0                    Debian's redis-server (7.0)
#   local/prometheus:bookworm          Debian's prometheus (2.x) and wget
#   local/golang:<go version>-bookworm Debian plus the Go toolchain of this machine
#                                      (Debian has no Go 1.26): deploy/Dockerfile's builder
#   local/distroless-static:nonroot    what distroless static holds: /etc/passwd with
#                                      nonroot (65532), CA certificates, /tmp; no shell
#   profiled:dev                       deploy/Dockerfile built on the two above
#
#   deploy/images.sh            build them all
#   deploy/images.sh NAME...    build some: base kafka redis prometheus golang runtime profiled
#   deploy/images.sh env        print the settings that point the tests at these images
#
# On a machine that can pull, none of this is needed: the tests and compose
# use the official images (apache/kafka, redis, golang, distroless, prom/prometheus).
#
# Every build uses the host network (docker build --network host), and the
# Dockerfiles here need only the classic builder.
#
# Environment:
#   DEBIAN_MIRROR    the Debian mirror for debootstrap (default: the one apt uses,
#                    read from /etc/apt/sources.list and /etc/apt/sources.list.d/)
#   DEBIAN_SUITE     default bookworm
#   REBUILD_BASE=1   debootstrap again even when local/debian:bookworm exists
#   PROFILED_CACHE   where deploy/kafka.sh keeps the broker jars
#   PROFILED_IMAGE   the tag of deploy/Dockerfile's image (default profiled:dev)
#   PROFILED_GO_IMAGE, PROFILED_RUNTIME_IMAGE
#                    its base images (default: the local stand-ins above)
set -euo pipefail

# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # log, die, SCRIPT_DIR, REPO_ROOT, KAFKA_VERSION, ...

SUITE="${DEBIAN_SUITE:-bookworm}"
GO_VERSION="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"

BASE_IMAGE="local/debian:$SUITE"
KAFKA_IMAGE="local/kafka:$KAFKA_VERSION"
REDIS_IMAGE="local/redis:7.0"
PROMETHEUS_IMAGE="local/prometheus:$SUITE"
GO_IMAGE="local/golang:$GO_VERSION-$SUITE"
RUNTIME_IMAGE="local/distroless-static:nonroot"
# deploy/Dockerfile's image and bases (the compose host override reads the same names)
PROFILED_IMAGE="${PROFILED_IMAGE:-profiled:dev}"
PROFILED_GO_IMAGE="${PROFILED_GO_IMAGE:-$GO_IMAGE}"
PROFILED_RUNTIME_IMAGE="${PROFILED_RUNTIME_IMAGE:-$RUNTIME_IMAGE}"

# timed NAME CMD...: run CMD and log how long it took.
timed() {
    local name="$1" t0=$SECONDS
    shift
    "$@"
    log "$name: $((SECONDS - t0)) s"
}

# The first Debian archive (not -security) that apt's sources name for the
# suite, in either format (one-line or deb822).
apt_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        awk -v s="$SUITE" '$1 == "deb" { u = ""; for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { u = $i; break }
            if (u ~ /\/debian\/?$/ && $(i+1) == s) { print u; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
            { u = ""; ok = 0
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
                if ($i ~ /^Suites:/) { n = split($i, a, /[ \t]+/); for (j = 2; j <= n; j++) if (a[j] == s) ok = 1 }
              }
              if (ok && u ~ /\/debian\/?$/) { print u; exit } }' "$f"
    done
}

build() { # build IMAGE CONTEXT [docker build args...]
    local image="$1" ctx="$2"
    shift 2
    docker build --network host -q -t "$image" "$@" "$ctx" >/dev/null
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
    if image_exists "$BASE_IMAGE" && [[ "${REBUILD_BASE:-}" != 1 ]]; then
        log "$BASE_IMAGE exists (REBUILD_BASE=1 to build it again)"
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
    local mirror="${DEBIAN_MIRROR:-}"
    [[ -n "$mirror" ]] || mirror="$(apt_mirror | sed -n 1p)"
    [[ -n "$mirror" ]] || die "no Debian mirror for $SUITE in apt's sources; set DEBIAN_MIRROR"
    local root
    root="$(mktemp -d -t profiled-rootfs.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$root'" RETURN
    if ! debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$root.log" 2>&1; then
        tail -n 30 "$root.log" >&2
        rm -f "$root.log"
        die "debootstrap failed"
    fi
    rm -f "$root.log"
    # images are not booted: no daemons may start while packages install
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
}

# apt_install PACKAGES: the RUN line of a Dockerfile on the base.
apt_install() {
    echo "RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $* >/dev/null && rm -rf /var/lib/apt/lists/*"
}

build_redis() {
    build "$REDIS_IMAGE" - <<EOF
FROM $BASE_IMAGE
$(apt_install redis-server)
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
EOF
}

build_prometheus() {
    build "$PROMETHEUS_IMAGE" - <<EOF
FROM $BASE_IMAGE
$(apt_install prometheus wget ca-certificates)
# Debian's prometheus keeps its data in /var/lib/prometheus/metrics2 by
# default, the official image in /prometheus (its working directory)
RUN mkdir -p /prometheus /etc/prometheus /var/lib/prometheus && chown nobody:nogroup /prometheus && \\
    rm -rf /var/lib/prometheus/metrics2 && ln -s /prometheus /var/lib/prometheus/metrics2
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
}

build_golang() {
    [[ -n "$GO_VERSION" ]] || die "no go on the PATH: the builder image copies this machine's Go toolchain"
    local ctx goroot
    ctx="$(mktemp -d -t profiled-golang.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    goroot="$(go env GOROOT)"
    # the toolchain without its tests and docs
    tar -C "$goroot" --exclude='./test' --exclude='./doc' --exclude='*_test.go' --exclude='./pkg/tool/*/api' -c . |
        (mkdir -p "$ctx/go" && tar -C "$ctx/go" -x)
    # this machine's CA bundle: it reaches the module proxy, and the
    # builder must trust what this machine trusts on the way
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
    cat >"$ctx/Dockerfile" <<EOF
FROM $BASE_IMAGE
$(apt_install ca-certificates)
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY go /usr/local/go
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOTOOLCHAIN=local
WORKDIR /go
EOF
    build "$GO_IMAGE" "$ctx"
}

build_runtime() {
    local root
    root="$(mktemp -d -t profiled-runtime.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$root'" RETURN
    mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot" "$root/root"
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    fi
    chown -R 0:0 "$root"
    chown 65532:65532 "$root/home/nonroot"
    tar -C "$root" --numeric-owner -c . |
        docker import --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' - "$RUNTIME_IMAGE" >/dev/null
}

# console_log4j NAME APPENDER TARGET LEVEL: prints a log4j2.properties
# whose root logger, at LEVEL, writes in apache/kafka's pattern to the
# console's TARGET (SYSTEM_OUT or SYSTEM_ERR) through the appender APPENDER;
# loggers of its own may follow.
console_log4j() {
    cat <<EOF
name = $1
status = warn
dest = err
appender.console.type = Console
appender.console.name = $2
appender.console.target = $3
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $4
rootLogger.appenderRef.console.ref = $2
EOF
}

build_kafka() {
    "$SCRIPT_DIR/kafka.sh" fetch
    local ctx
    ctx="$(mktemp -d -t profiled-kafka-image.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    mkdir -p "$ctx/libs" "$ctx/bin" "$ctx/config"
    cp "$KAFKA_LIBS_DIR/"*.jar "$ctx/libs/"
    # the command-line tools (topics, api versions) are not broker jars
    if ! mvn -q -B -Dstyle.color=never dependency:copy \
            -Dartifact="org.apache.kafka:kafka-tools:$KAFKA_VERSION" \
            -DoutputDirectory="$ctx/libs" >"$ctx/mvn.log" 2>&1; then
        cat "$ctx/mvn.log" >&2
        die "mvn could not fetch kafka-tools $KAFKA_VERSION"
    fi
    rm -f "$ctx/mvn.log"
    {
        echo "# The broker logs to the console, as apache/kafka's does."
        console_log4j kafka STDOUT SYSTEM_OUT INFO
        cat <<'EOF'
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.clientsconfig.name = org.apache.kafka.common.config.AbstractConfig
logger.clientsconfig.level = WARN
logger.coordinator.name = org.apache.kafka.coordinator
logger.coordinator.level = WARN
EOF
    } >"$ctx/config/log4j2.properties"
    console_log4j kafka-tools STDERR SYSTEM_ERR WARN >"$ctx/config/tools-log4j2.properties"
    # apache/kafka's environment interface: KAFKA_FOO_BAR=v is foo.bar=v
    # ("__" is "_", "___" is "-"); CLUSTER_ID names the cluster.
    cat >"$ctx/bin/run" <<'EOF'
#!/bin/bash
set -euo pipefail
props=/opt/kafka/config/server.properties
: >"$props"
skip=" KAFKA_HEAP_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_OPTS KAFKA_LOG4J_OPTS KAFKA_VERSION "
while IFS='=' read -r -d '' name value; do
    [[ "$name" == KAFKA_* && "$skip" != *" $name "* ]] || continue
    key="${name#KAFKA_}"
    key="${key,,}"
    key="${key//___/-}"
    key="${key//__/@}"
    key="${key//_/.}"
    key="${key//@/_}"
    printf '%s=%s\n' "$key" "$value" >>"$props"
done < <(env -0)
grep -q '^log.dirs=' "$props" || echo "log.dirs=/tmp/kraft-combined-logs" >>"$props"
cp="/opt/kafka/libs/*"
log4j="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"
format=(--cluster-id "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" --config "$props" --ignore-formatted)
grep -q '^controller.quorum.voters=' "$props" || format+=(--standalone)
java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "$log4j" -cp "$cp" kafka.tools.StorageTool format "${format[@]}" >/dev/null
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} \
    ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent} \
    -Djava.awt.headless=true "$log4j" ${KAFKA_OPTS:-} -cp "$cp" kafka.Kafka "$props"
EOF
    local tool
    for tool in kafka-topics.sh:TopicCommand kafka-broker-api-versions.sh:BrokerApiVersionsCommand; do
        cat >"$ctx/bin/${tool%%:*}" <<EOF
#!/bin/sh
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties -cp '/opt/kafka/libs/*' org.apache.kafka.tools.${tool#*:} "\$@"
EOF
    done
    chmod 755 "$ctx"/bin/*
    cat >"$ctx/Dockerfile" <<EOF
FROM $BASE_IMAGE
$(apt_install openjdk-17-jre-headless)
COPY libs /opt/kafka/libs
COPY config /opt/kafka/config
COPY bin /opt/kafka/bin
ENV PATH=/opt/kafka/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 9092
CMD ["/opt/kafka/bin/run"]
EOF
    build "$KAFKA_IMAGE" "$ctx"
}

# The profiled image from deploy/Dockerfile. The classic builder reads only
# a .dockerignore at the context's root, so the context is a copy of the
# repository cut by deploy/Dockerfile.dockerignore (its patterns anchored
# at the root, as Docker reads them), plus the Dockerfile.
build_profiled() {
    local version revision ctx
    version="$(git -C "$REPO_ROOT" describe --tags --always --dirty 2>/dev/null || echo dev)"
    revision="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    ctx="$(mktemp -d -t profiled-context.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    (cd "$REPO_ROOT" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' |
        tar -c --anchored --exclude-from=deploy/Dockerfile.dockerignore --null -T -) | tar -x -C "$ctx"
    mkdir -p "$ctx/deploy"
    cp "$REPO_ROOT/deploy/Dockerfile" "$ctx/deploy/Dockerfile"
    docker build --network host -q -t "$PROFILED_IMAGE" -f "$ctx/deploy/Dockerfile" \
        --build-arg GO_IMAGE="$PROFILED_GO_IMAGE" --build-arg RUNTIME_IMAGE="$PROFILED_RUNTIME_IMAGE" \
        --build-arg GOPROXY="$(go env GOPROXY)" --build-arg GOSUMDB="$(go env GOSUMDB)" \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" "$ctx" >/dev/null
}

print_env() {
    cat <<EOF
PROFILED_TEST_KAFKA_IMAGE=$KAFKA_IMAGE
PROFILED_TEST_REDIS_IMAGE=$REDIS_IMAGE
PROFILED_TEST_PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE
PROFILED_GO_IMAGE=$GO_IMAGE
PROFILED_RUNTIME_IMAGE=$RUNTIME_IMAGE
EOF
}

main() {
    local names=("$@")
    if [[ ${#names[@]} == 0 ]]; then
        names=(base kafka redis prometheus golang runtime profiled)
    fi
    if [[ "${names[0]}" == env ]]; then
        print_env
        return
    fi
    command -v docker >/dev/null || die "docker is missing"
    docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running?)"
    local name t0=$SECONDS
    for name in "${names[@]}"; do
        case "$name" in
            base | kafka | redis | prometheus | golang | runtime | profiled) timed "$name" "build_$name" ;;
            *) die "unknown image $name (want base kafka redis prometheus golang runtime profiled, or env)" ;;
        esac
    done
    log "all: $((SECONDS - t0)) s"
}

main "$@"
