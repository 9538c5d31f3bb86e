#!/usr/bin/env bash
# Throw-away redis-server for tests (no persistence, fresh dir each start).
#
#   deploy/redis.sh start    start it, wait for PONG, print REDIS_URL=...
#   deploy/redis.sh stop     stop the instance started by `start`
#   deploy/redis.sh status   report whether that instance is running
#
# Environment:
#   PROFILED_CACHE       cache dir (default $HOME/.cache/profiled); holds
#                        redis.current, the data dir of the running instance
#   REDIS_PORT           port on 127.0.0.1 (default 16379)
#   REDIS_DATA_DIR       data dir for `start` (default: a new mktemp -d dir);
#                        for stop/status: which instance (default: the one
#                        recorded in $PROFILED_CACHE/redis.current)
#   REDIS_START_TIMEOUT  seconds to wait for PONG (default 20)
#
# If redis-server is missing and we are root, it is installed with apt-get.
set -euo pipefail

# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CURRENT_FILE="$CACHE_DIR/redis.current"
REDIS_PORT="${REDIS_PORT:-16379}"
REDIS_START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
STOP_TIMEOUT=10

# is_our_redis PID PORT: PID is alive and is a redis-server on PORT.
is_our_redis() {
    local port="$2" cmdline
    cmdline="$(cmdline_of "$1")" || return 1
    [[ "$cmdline" == *redis-server* && "$cmdline" == *":$port"* ]]
}

resolve_data_dir() { recorded_data_dir REDIS_DATA_DIR; }

ping_ok() {
    [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]
}

cmd_start() {
    ensure_redis redis-server redis-tools

    local current
    current="$(cat "$CURRENT_FILE" 2>/dev/null || true)"
    if [[ -n "$current" && -f "$current/redis.pid" ]] &&
            is_our_redis "$(cat "$current/redis.pid")" "$(cat "$current/port" 2>/dev/null)"; then
        if [[ -z "${REDIS_DATA_DIR:-}" || "$REDIS_DATA_DIR" == "$current" ]]; then
            die "a redis started by this script is already running (data dir $current); run '$0 stop' first"
        fi
    fi
    if port_open "$REDIS_PORT"; then
        die "port 127.0.0.1:$REDIS_PORT is already in use (set REDIS_PORT)"
    fi

    local dir
    dir="$(fresh_data_dir REDIS_DATA_DIR redis)"
    echo "$REDIS_PORT" >"$dir/port"
    mkdir -p "$CACHE_DIR"
    echo "$dir" >"$CURRENT_FILE"

    if ! redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
            --dir "$dir" --save '' --appendonly no \
            --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            >"$dir/start.out" 2>&1; then
        cat "$dir/start.out" "$dir/redis.log" >&2 2>/dev/null || true
        stop_dir "$dir"
        die "redis-server failed to start"
    fi

    local deadline=$((SECONDS + REDIS_START_TIMEOUT))
    until ping_ok "$REDIS_PORT"; do
        if ((SECONDS >= deadline)); then
            log "redis not answering PING after ${REDIS_START_TIMEOUT}s; log tail:"
            tail -n 30 "$dir/redis.log" >&2 2>/dev/null || true
            stop_dir "$dir"
            exit 1
        fi
        sleep 0.1
    done
    # With --daemonize the pid file appears shortly after the fork.
    for _ in $(seq 1 50); do
        [[ -s "$dir/redis.pid" ]] && break
        sleep 0.1
    done
    log "redis pid $(cat "$dir/redis.pid" 2>/dev/null || echo '?') ready on 127.0.0.1:$REDIS_PORT, data dir $dir"
    echo "REDIS_DATA_DIR=$dir"
    echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

# stop_dir DIR: stop the redis whose pid file is in DIR, remove DIR if
# `start` created it.
stop_dir() {
    local dir="$1" pid="" port
    port="$(cat "$dir/port" 2>/dev/null || true)"
    [[ -f "$dir/redis.pid" ]] && pid="$(cat "$dir/redis.pid")"
    if [[ -n "$pid" && -n "$port" ]] && is_our_redis "$pid" "$port"; then
        terminate "$pid" redis
    else
        log "no running redis for data dir $dir"
    fi
    rm -f "$dir/redis.pid"
    if [[ -f "$dir/.created-by-redis-sh" ]]; then
        rm -rf "$dir"
    fi
    forget "$dir"
}

cmd_stop() { cmd_stop_via stop_dir; }

cmd_status() {
    local dir pid port
    dir="$(resolve_data_dir)"
    if [[ -n "$dir" && -f "$dir/redis.pid" ]]; then
        pid="$(cat "$dir/redis.pid")"
        port="$(cat "$dir/port" 2>/dev/null || true)"
        if [[ -n "$port" ]] && is_our_redis "$pid" "$port"; then
            echo "running: pid $pid, data dir $dir, REDIS_URL=redis://127.0.0.1:$port/0"
            return 0
        fi
    fi
    echo "not running"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
