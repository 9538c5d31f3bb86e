# shellcheck shell=bash
# What the deploy scripts share; each of them sources it, from any working
# directory, with
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It is not run on its own. Every message names the script that sourced it.

LIB_SCRIPT="$(basename "${BASH_SOURCE[1]:-$0}")"
# deploy/ and the repository's root, wherever the script is run from.
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# Downloads and the record of the running instance (NAME.current).
CACHE_DIR="${PROFILED_CACHE:-$HOME/.cache/profiled}"

# The Kafka release that kafka.sh runs and images.sh builds an image of,
# and the broker jars of it that `kafka.sh fetch` puts in the cache.
KAFKA_VERSION="4.1.1"
KAFKA_HOME_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS_DIR="$KAFKA_HOME_DIR/libs"

log() { echo "$LIB_SCRIPT: $*" >&2; }
die() { log "error: $*"; exit 1; }

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# cmdline_of PID: prints the command line of the live process PID; false if
# PID is no number or no live process.
cmdline_of() {
    [[ "$1" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$1" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null
}

# ensure_redis PACKAGE...: installs the Redis packages with apt-get (as
# root) unless redis-server, redis-cli and, with redis-sentinel among them,
# redis-sentinel are there already.
ensure_redis() {
    local -a cmds=(redis-server redis-cli)
    [[ " $* " == *" redis-sentinel "* ]] && cmds+=(redis-sentinel)
    local c missing=0
    for c in "${cmds[@]}"; do command -v "$c" >/dev/null || missing=1; done
    ((missing)) || return 0
    [[ "$(id -u)" == 0 ]] || die "Redis is not installed (install the packages $*)"
    command -v apt-get >/dev/null || die "Redis is not installed and apt-get is unavailable"
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "$@" >&2
    for c in "${cmds[@]}"; do command -v "$c" >/dev/null || die "$c still missing after apt-get install"; done
}

# fresh_data_dir VAR NAME: prints the data dir for `start`, in canonical
# form: the one the variable VAR names, which must be empty or absent, else
# a new mktemp -d dir. A dir it makes gets the marker .created-by-NAME-sh,
# by which `stop` knows that it may remove it.
fresh_data_dir() {
    local dir="${!1:-}" created=0
    if [[ -n "$dir" ]]; then
        if [[ -e "$dir" ]]; then
            [[ -d "$dir" ]] || die "$1=$dir is not a directory"
            [[ -z "$(ls -A "$dir")" ]] || die "$1=$dir is not empty (start needs a fresh dir)"
        else
            mkdir -p "$dir"
            created=1
        fi
    else
        dir="$(mktemp -d -t "profiled-$2.XXXXXX")"
        created=1
    fi
    dir="$(cd "$dir" && pwd)"
    if [[ "$created" == 1 ]]; then : >"$dir/.created-by-$2-sh"; fi
    echo "$dir"
}

# recorded_data_dir VAR: the data dir that stop, status and the like act
# on: the one the variable VAR names (in canonical form, as `start`
# recorded it), else the one recorded in $CURRENT_FILE.
recorded_data_dir() {
    if [[ -n "${!1:-}" ]]; then
        (cd "${!1}" 2>/dev/null && pwd) || echo "${!1}"
    elif [[ -f "$CURRENT_FILE" ]]; then
        cat "$CURRENT_FILE"
    fi
}

# forget DIR: removes the record of the running instance, $CURRENT_FILE,
# when it names DIR.
forget() {
    if [[ "$(cat "$CURRENT_FILE" 2>/dev/null)" == "$1" ]]; then rm -f "$CURRENT_FILE"; fi
}

# ping_or_down PORT [WHAT]: true if the redis on PORT answers PING, else
# prints "127.0.0.1:PORT [WHAT] down" and is false: a line of `status`.
ping_or_down() {
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    echo "127.0.0.1:$1 ${2:+$2 }down"
    return 1
}

# cmd_stop_via FUNC: the `stop` command: runs FUNC DIR on the data dir
# that resolve_data_dir names, or says why there is nothing to stop.
cmd_stop_via() {
    local dir
    dir="$(resolve_data_dir)"
    if [[ -z "$dir" ]]; then
        log "nothing to stop"
        return 0
    fi
    if [[ ! -d "$dir" ]]; then
        log "data dir $dir is gone; nothing to stop"
        forget "$dir"
        return 0
    fi
    "$1" "$dir"
}

# cmd_status_via FUNC: the `status` command of a set-up of several
# servers: runs FUNC DIR on the data dir that resolve_data_dir names, or
# prints "not running" and is false.
cmd_status_via() {
    local dir
    dir="$(resolve_data_dir)"
    [[ -n "$dir" && -d "$dir" ]] || { echo "not running"; return 1; }
    "$1" "$dir"
}

# status_lines WHAT LINE PORT...: the lines of `status` for the servers on
# the PORTs: LINE PORT prints the line of one that answers PING, and
# ping_or_down PORT WHAT that of one that does not; false when one is down.
status_lines() {
    local what="$1" line="$2" port rc=0
    shift 2
    for port in "$@"; do
        ping_or_down "$port" "$what" || { rc=1; continue; }
        "$line" "$port"
    done
    return "$rc"
}

# remove_data_dir DIR: the end of a `stop` whose servers are gone: DIR
# removed and forgotten.
remove_data_dir() {
    rm -rf "$1"
    forget "$1"
    log "stopped"
}

# terminate PID WHAT: sends PID a TERM, and a KILL when it is still alive
# STOP_TIMEOUT seconds later, then waits up to 5 s more for it to go. WHAT
# names the process in the log.
terminate() {
    local pid="$1" what="$2"
    log "stopping $what pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$what pid $pid still alive after ${STOP_TIMEOUT}s, sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
}

# stop_redis PIDFILE NAME PORT: TERMs the NAME (redis-server,
# redis-sentinel) on PORT whose pid PIDFILE holds, if it runs, and waits up
# to 10 s for it to go.
stop_redis() {
    local pidfile="$1" name="$2" port="$3" pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if cmdline_of "$pid" | grep -q "$name.*:$port"; then
        kill "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
}

# kill_redis DIR PORT WHAT: SIGKILLs the redis-server on PORT whose pid
# file is DIR/PORT/redis.pid, waits until it is gone and removes the pid
# file. WHAT names it in the messages ("node", "redis-server").
kill_redis() {
    local dir="$1" port="$2" what="$3" pid
    pid="$(cat "$dir/$port/redis.pid" 2>/dev/null)" || die "$what $port has no pid file"
    cmdline_of "$pid" | grep -q "redis-server.*:$port" || die "$what $port is not running"
    kill -9 "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/$port/redis.pid"
    log "$what $port killed"
}
