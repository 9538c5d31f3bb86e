#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller in one JVM) for tests.
#
#   deploy/kafka.sh fetch    copy the broker jars into the cache (via Maven)
#   deploy/kafka.sh start    start a fresh broker, wait until it is ready,
#                            print KAFKA_BROKERS=127.0.0.1:PORT
#   deploy/kafka.sh stop     stop the broker started by `start`
#   deploy/kafka.sh restart  stop that broker and start it again on the same
#                            data dir and ports (topics, offsets and cluster id
#                            kept), wait until it is ready
#   deploy/kafka.sh status   report whether that broker is running
#
# Environment:
#   PROFILED_CACHE          cache dir            (default $HOME/.cache/profiled)
#   KAFKA_PORT              client port          (default 19092)
#   KAFKA_CONTROLLER_PORT   KRaft controller port (default 19093)
#   KAFKA_DATA_DIR          data dir for `start` (default: a new mktemp -d dir);
#                           for stop/restart/status: which instance (default:
#                           the one recorded in $PROFILED_CACHE/kafka.current)
#   KAFKA_START_TIMEOUT     seconds to wait for readiness (default 90)
#   KAFKA_JAVA_OPTS         JVM options (default: what Kafka's own start scripts
#                           use — a fixed 1 GiB heap, G1 with a 20 ms pause goal,
#                           concurrent cycles from 35% occupancy)
set -euo pipefail

# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # log, die, SCRIPT_DIR, REPO_ROOT, KAFKA_VERSION, ...
KAFKA_DEPLOY_DIR="$REPO_ROOT/deploy/kafka"

LIBS_MARKER="$KAFKA_HOME_DIR/.libs-complete"
CURRENT_FILE="$CACHE_DIR/kafka.current"

KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
# Kafka's own defaults (kafka-server-start.sh, kafka-run-class.sh). A
# smaller, growing heap without a pause goal ran a concurrent G1 cycle every
# few seconds under load, and on a machine the broker shares with Redis and
# profiled those cycles showed as the benchmark's latency tail.
KAFKA_JAVA_OPTS="${KAFKA_JAVA_OPTS:--Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15}"
STOP_TIMEOUT=20

if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA="java"
fi

# Identifies the current contents of deploy/kafka/pom.xml, so that a changed
# pom invalidates the cached jars.
pom_digest() {
    sha256sum "$KAFKA_DEPLOY_DIR/pom.xml" | cut -d' ' -f1
}

libs_complete() {
    [[ -f "$LIBS_MARKER" && -d "$KAFKA_LIBS_DIR" ]] &&
        [[ "$(cat "$LIBS_MARKER")" == "$(pom_digest)" ]] &&
        compgen -G "$KAFKA_LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
}

cmd_fetch() {
    command -v mvn >/dev/null || die "mvn not found (Maven is needed to fetch the Kafka jars)"
    mkdir -p "$KAFKA_HOME_DIR"
    # Serialize concurrent fetches (e.g. parallel test runs).
    exec 8>"$KAFKA_HOME_DIR/.fetch.lock"
    flock -w 600 8 || die "timed out waiting for $KAFKA_HOME_DIR/.fetch.lock"
    if libs_complete; then
        log "jars already in $KAFKA_LIBS_DIR"
        exec 8>&-
        return 0
    fi
    log "fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIBS_DIR"
    local tmp
    tmp="$(mktemp -d "$KAFKA_HOME_DIR/libs.tmp.XXXXXX")"
    if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_DEPLOY_DIR/pom.xml" \
            dependency:copy-dependencies \
            -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.log" 2>&1; then
        cat "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        die "mvn dependency:copy-dependencies failed"
    fi
    rm -f "$tmp.log"
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
    rm -rf "$KAFKA_LIBS_DIR" "$LIBS_MARKER"
    mv "$tmp" "$KAFKA_LIBS_DIR"
    pom_digest >"$LIBS_MARKER"
    log "fetched $(find "$KAFKA_LIBS_DIR" -name '*.jar' | wc -l) jars"
    exec 8>&-
}

# A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22
# chars), what `kafka-storage random-uuid` prints; generated here to save a
# JVM start. Like Kafka's Uuid.randomUuid, avoid a leading '-'.
random_cluster_id() {
    local id
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ ${#id} == 22 && "$id" != -* ]] && { echo "$id"; return 0; }
    done
    die "could not generate a cluster id"
}

# is_our_kafka PID DATADIR: PID is alive and is a kafka.Kafka JVM for DATADIR.
is_our_kafka() {
    local dir="$2" cmdline
    cmdline="$(cmdline_of "$1")" || return 1
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$dir/server.properties"* ]]
}

# The data dir that stop/status act on.
resolve_data_dir() { recorded_data_dir KAFKA_DATA_DIR; }

write_server_properties() {
    local dir="$1"
    cat >"$dir/server.properties" <<EOF
# Generated by deploy/kafka.sh: single-node KRaft (combined broker+controller) for tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data

num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true

offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

group.initial.rebalance.delay.ms=0
# Allow tests to use short consumer session timeouts.
group.min.session.timeout.ms=1000
EOF
}

cmd_start() {
    libs_complete || cmd_fetch

    local dir current
    current="$(cat "$CURRENT_FILE" 2>/dev/null || true)"
    if [[ -n "$current" && -f "$current/kafka.pid" ]] && is_our_kafka "$(cat "$current/kafka.pid")" "$current"; then
        if [[ -z "${KAFKA_DATA_DIR:-}" || "$KAFKA_DATA_DIR" == "$current" ]]; then
            die "a broker started by this script is already running (data dir $current); run '$0 stop' first"
        fi
    fi
    if port_open "$KAFKA_PORT"; then
        die "port 127.0.0.1:$KAFKA_PORT is already in use (set KAFKA_PORT)"
    fi
    if port_open "$KAFKA_CONTROLLER_PORT"; then
        die "port 127.0.0.1:$KAFKA_CONTROLLER_PORT is already in use (set KAFKA_CONTROLLER_PORT)"
    fi

    dir="$(fresh_data_dir KAFKA_DATA_DIR kafka)"
    mkdir -p "$dir/data" "$dir/logs"
    write_server_properties "$dir"

    mkdir -p "$CACHE_DIR"
    echo "$dir" >"$CURRENT_FILE"

    local cluster_id
    cluster_id="$(random_cluster_id)"
    local -a log_opts=(
        "-Dlog4j2.configurationFile=$KAFKA_DEPLOY_DIR/log4j2.properties"
        "-Dkafka.logs.dir=$dir/logs"
    )
    # --standalone: this node is the only voter of a dynamic KRaft quorum
    # (goes with controller.quorum.bootstrap.servers, not controller.quorum.voters).
    # The format JVM is short-lived: C1 only + serial GC start it faster.
    if ! "$JAVA" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto "${log_opts[@]}" \
            -cp "$KAFKA_LIBS_DIR/*" kafka.tools.StorageTool format \
            --cluster-id "$cluster_id" --config "$dir/server.properties" --standalone \
            >"$dir/logs/format.log" 2>&1; then
        cat "$dir/logs/format.log" >&2
        die "kafka-storage format failed"
    fi

    launch_broker "$dir"
}

# launch_broker DIR [keep]: run the broker of the formatted data dir DIR (its
# server.properties names the ports), wait until it is ready and print where
# it is; on failure stop it and exit 1, removing DIR if `start` created it
# unless the second argument is "keep" (a restart keeps the data).
launch_broker() {
    local dir="$1" keep="${2:-}"
    local -a log_opts=(
        "-Dlog4j2.configurationFile=$KAFKA_DEPLOY_DIR/log4j2.properties"
        "-Dkafka.logs.dir=$dir/logs"
    )
    # server.log is appended to across restarts: readiness is a new
    # "started" line, not an old one.
    local started_before
    started_before="$(grep -c 'Kafka Server started' "$dir/logs/server.log" 2>/dev/null || true)"
    started_before="${started_before:-0}"
    local t0=$SECONDS
    # shellcheck disable=SC2086  # KAFKA_JAVA_OPTS is a list of words
    nohup "$JAVA" $KAFKA_JAVA_OPTS -Djava.awt.headless=true -XX:+ExitOnOutOfMemoryError \
        "${log_opts[@]}" -cp "$KAFKA_LIBS_DIR/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/logs/stdout.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/kafka.pid"
    log "started broker pid $pid, data dir $dir; waiting for readiness (up to ${KAFKA_START_TIMEOUT}s)"

    local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) ready=0 started
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker process $pid exited during startup"
            break
        fi
        started="$(grep -c 'Kafka Server started' "$dir/logs/server.log" 2>/dev/null || true)"
        if ((${started:-0} > started_before)) && port_open "$KAFKA_PORT"; then
            ready=1
            break
        fi
        sleep 0.5
    done
    if [[ "$ready" != 1 ]]; then
        log "broker not ready after $((SECONDS - t0))s; last log lines:"
        tail -n 60 "$dir/logs/server.log" >&2 2>/dev/null || true
        tail -n 20 "$dir/logs/stdout.log" >&2 2>/dev/null || true
        if [[ "$keep" == keep ]]; then
            terminate_broker "$dir" || true
        else
            cmd_stop_dir "$dir" || true
        fi
        exit 1
    fi
    log "broker ready after ~$((SECONDS - t0))s"
    echo "KAFKA_DATA_DIR=$dir"
    echo "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
}

# cmd_stop_dir DIR: stop the broker whose pid file is in DIR, remove DIR if
# `start` created it.
cmd_stop_dir() {
    local dir="$1"
    terminate_broker "$dir"
    if [[ -f "$dir/.created-by-kafka-sh" ]]; then
        rm -rf "$dir"
    fi
    forget "$dir"
}

# terminate_broker DIR: stop the broker whose pid file is in DIR (TERM, then
# KILL after STOP_TIMEOUT), keeping DIR.
terminate_broker() {
    local dir="$1" pid=""
    [[ -f "$dir/kafka.pid" ]] && pid="$(cat "$dir/kafka.pid")"
    if [[ -n "$pid" ]] && is_our_kafka "$pid" "$dir"; then
        terminate "$pid" broker
    else
        log "no running broker for data dir $dir"
    fi
    rm -f "$dir/kafka.pid"
}

# cmd_restart: stop the broker of the resolved data dir and start it again on
# the same data (no format: the cluster id, topics and group offsets stay)
# and the same ports.
cmd_restart() {
    libs_complete || cmd_fetch
    local dir
    dir="$(resolve_data_dir)"
    [[ -n "$dir" ]] || die "no broker to restart (set KAFKA_DATA_DIR)"
    [[ -f "$dir/server.properties" && -d "$dir/data" ]] || die "$dir is not a data dir made by '$0 start'"
    # the ports come from the instance's own configuration
    KAFKA_PORT="$(sed -n 's#^advertised.listeners=PLAINTEXT://127.0.0.1:##p' "$dir/server.properties")"
    KAFKA_CONTROLLER_PORT="$(sed -n 's#^controller.quorum.bootstrap.servers=127.0.0.1:##p' "$dir/server.properties")"
    terminate_broker "$dir"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while { port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; } && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if port_open "$KAFKA_PORT"; then
        die "port 127.0.0.1:$KAFKA_PORT is still in use after stopping the broker"
    fi
    mkdir -p "$CACHE_DIR"
    echo "$dir" >"$CURRENT_FILE"
    launch_broker "$dir" keep
}

cmd_stop() { cmd_stop_via cmd_stop_dir; }

cmd_status() {
    local dir pid
    dir="$(resolve_data_dir)"
    if [[ -n "$dir" && -f "$dir/kafka.pid" ]]; then
        pid="$(cat "$dir/kafka.pid")"
        if is_our_kafka "$pid" "$dir"; then
            local port
            port="$(sed -n 's#^advertised.listeners=PLAINTEXT://##p' "$dir/server.properties")"
            echo "running: pid $pid, data dir $dir, KAFKA_BROKERS=$port"
            return 0
        fi
    fi
    echo "not running"
    return 1
}

case "${1:-}" in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_restart ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 fetch|start|stop|restart|status" >&2
        exit 2
        ;;
esac
