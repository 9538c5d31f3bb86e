#!/usr/bin/env bash
# Throw-away Redis Sentinel set-up for tests: 1 master and 2 replicas from
# Debian's redis-server, watched by 3 sentinels from Debian's redis-sentinel
# (quorum 2), under the master name "profiled".
#
#   deploy/redis-sentinel.sh start    start it, wait until the sentinels know
#                                     the master and both replicas, print
#                                     REDIS_SENTINEL_ADDRS=127.0.0.1:S1,...
#                                     and REDIS_SENTINEL_MASTER=profiled
#   deploy/redis-sentinel.sh stop     stop the processes started by `start`
#   deploy/redis-sentinel.sh status   report the servers' roles and the master
#                                     the sentinels name
#   deploy/redis-sentinel.sh master   print the current master's host:port
#   deploy/redis-sentinel.sh kill PORT     kill -9 one redis-server (a fault:
#                                          the sentinels promote a replica
#                                          after down-after-milliseconds)
#   deploy/redis-sentinel.sh restart PORT  start a stopped redis-server again
#                                          on its data dir, as a replica of the
#                                          master the sentinels name
#
# Ports: REDIS_SENTINEL_PORT (default 17400) is the first redis-server; the
# servers take 3 consecutive ports, the sentinels the 3 after them.
#
# Environment:
#   PROFILED_CACHE              cache dir (default $HOME/.cache/profiled); holds
#                               redis-sentinel.current, the running data dir
#   REDIS_SENTINEL_PORT         first port (default 17400)
#   REDIS_SENTINEL_DATA_DIR     data dir for `start` (default: mktemp -d); for
#                               the other commands: which set-up (default: the
#                               one recorded in redis-sentinel.current)
#   REDIS_SENTINEL_DOWN_AFTER   down-after-milliseconds (default 1000)
#   REDIS_SENTINEL_APPENDFSYNC  appendfsync of the servers' AOF (default always)
#   REDIS_START_TIMEOUT         seconds to wait (default 30)
set -euo pipefail

# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CURRENT_FILE="$CACHE_DIR/redis-sentinel.current"
BASE_PORT="${REDIS_SENTINEL_PORT:-17400}"
MASTER_NAME=profiled
TIMEOUT="${REDIS_START_TIMEOUT:-30}"

resolve_data_dir() { recorded_data_dir REDIS_SENTINEL_DATA_DIR; }

wait_until() { # what, command...: poll until the command succeeds
    local what="$1"
    shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" 2>/dev/null; do
        ((SECONDS < deadline)) || die "$what within ${TIMEOUT}s"
        sleep 0.1
    done
}

pong() { redis-cli -p "$1" ping | grep -q PONG; }

start_server() { # dir port [master-port]: one redis-server on its own data dir
    local dir="$1" port="$2" of="${3:-}"
    mkdir -p "$dir/$port"
    local args=(--bind 127.0.0.1 --port "$port" --dir "$dir/$port"
        --appendonly yes --appendfsync "$(cat "$dir/appendfsync")" --save ''
        --maxmemory-policy noeviction
        --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log")
    [[ -z "$of" ]] || args+=(--replicaof 127.0.0.1 "$of")
    redis-server "${args[@]}" >/dev/null
    wait_until "redis-server $port did not answer PING" pong "$port"
}

start_sentinel() { # dir port master-port
    local dir="$1" port="$2" master="$3"
    mkdir -p "$dir/$port"
    # a sentinel rewrites its configuration file: each has its own
    cat >"$dir/$port/sentinel.conf" <<EOF
bind 127.0.0.1
port $port
dir $dir/$port
daemonize yes
pidfile $dir/$port/sentinel.pid
logfile $dir/$port/sentinel.log
sentinel monitor $MASTER_NAME 127.0.0.1 $master 2
sentinel down-after-milliseconds $MASTER_NAME ${REDIS_SENTINEL_DOWN_AFTER:-1000}
sentinel failover-timeout $MASTER_NAME 10000
sentinel parallel-syncs $MASTER_NAME 1
EOF
    redis-sentinel "$dir/$port/sentinel.conf" >/dev/null
    wait_until "sentinel $port did not answer PING" pong "$port"
}

knows_all() { # sentinel port: it names the master and sees 2 replicas and 2 other sentinels
    local s="$1"
    redis-cli -p "$s" sentinel get-master-addr-by-name "$MASTER_NAME" | grep -q 127.0.0.1 &&
        [[ "$(redis-cli -p "$s" sentinel master "$MASTER_NAME" | sed -n '/^num-slaves$/{n;p}')" == 2 ]] &&
        [[ "$(redis-cli -p "$s" sentinel master "$MASTER_NAME" | sed -n '/^num-other-sentinels$/{n;p}')" == 2 ]]
}

start() {
    # the package starts a system-wide sentinel on 26379; this script runs its own
    ensure_redis redis-server redis-tools redis-sentinel
    local dir="${REDIS_SENTINEL_DATA_DIR:-}"
    [[ -n "$dir" ]] || dir="$(mktemp -d -t profiled-redis-sentinel.XXXXXX)"
    mkdir -p "$dir" "$CACHE_DIR"
    dir="$(cd "$dir" && pwd)" # canonical, as resolve_data_dir names it
    local servers=() sentinels=()
    for ((i = 0; i < 6; i++)); do
        local port=$((BASE_PORT + i))
        if port_open "$port"; then
            die "port 127.0.0.1:$port is already in use (set REDIS_SENTINEL_PORT)"
        fi
        if ((i < 3)); then servers+=("$port"); else sentinels+=("$port"); fi
    done
    echo "${servers[*]}" >"$dir/servers"
    echo "${sentinels[*]}" >"$dir/sentinels"
    echo "${REDIS_SENTINEL_APPENDFSYNC:-always}" >"$dir/appendfsync"
    echo "$dir" >"$CURRENT_FILE"
    start_server "$dir" "${servers[0]}"
    start_server "$dir" "${servers[1]}" "${servers[0]}"
    start_server "$dir" "${servers[2]}" "${servers[0]}"
    wait_until "the replicas did not connect" \
        bash -c "redis-cli -p ${servers[0]} info replication | grep -q '^connected_slaves:2'"
    for port in "${sentinels[@]}"; do
        start_sentinel "$dir" "$port" "${servers[0]}"
    done
    for port in "${sentinels[@]}"; do
        wait_until "sentinel $port did not see both replicas and the other sentinels" knows_all "$port"
    done
    log "master 127.0.0.1:${servers[0]}, replicas ${servers[1]} ${servers[2]}, sentinels ${sentinels[*]}, data dir $dir"
    local addrs=()
    for port in "${sentinels[@]}"; do addrs+=("127.0.0.1:$port"); done
    local IFS=,
    echo "REDIS_SENTINEL_ADDRS=${addrs[*]}"
    echo "REDIS_SENTINEL_MASTER=$MASTER_NAME"
}

stop_dir() { # dir: stop the processes recorded in it and remove it
    local dir="$1"
    # sentinels first, so that they start no failover while the servers stop
    for port in $(cat "$dir/sentinels" 2>/dev/null); do
        stop_redis "$dir/$port/sentinel.pid" redis-sentinel "$port"
    done
    for port in $(cat "$dir/servers" 2>/dev/null); do
        stop_redis "$dir/$port/redis.pid" redis-server "$port"
    done
    remove_data_dir "$dir"
}

master() {
    local dir
    dir="$(resolve_data_dir)"
    [[ -n "$dir" && -d "$dir" ]] || die "no set-up recorded"
    for port in $(cat "$dir/sentinels"); do
        local a
        if a="$(redis-cli -p "$port" sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null)" && [[ -n "$a" ]]; then
            echo "$a" | paste -sd: -
            return 0
        fi
    done
    die "no sentinel answered"
}

server_line() { echo "127.0.0.1:$1 $(redis-cli -p "$1" role | head -1)"; }

sentinel_line() {
    echo "127.0.0.1:$1 sentinel, master $(redis-cli -p "$1" sentinel get-master-addr-by-name "$MASTER_NAME" | paste -sd: -)"
}

# shellcheck disable=SC2046 # the ports, one word each
status_dir() {
    local rc=0
    status_lines "" server_line $(cat "$1/servers") || rc=1
    status_lines sentinel sentinel_line $(cat "$1/sentinels") || rc=1
    return "$rc"
}

server_dir() { # port: the set-up's data dir, if port is one of its servers
    local dir port="$1"
    [[ "$port" =~ ^[0-9]+$ ]] || die "not a port: $port"
    dir="$(resolve_data_dir)"
    [[ -n "$dir" && -d "$dir/$port" ]] && grep -qw "$port" "$dir/servers" || die "no redis-server $port in the recorded set-up"
    echo "$dir"
}

kill_server() {
    local dir
    dir="$(server_dir "$1")"
    kill_redis "$dir" "$1" redis-server
}

restart_server() {
    local dir m
    dir="$(server_dir "$1")"
    ! redis-cli -p "$1" ping >/dev/null 2>&1 || die "redis-server $1 is running"
    m="$(master)"
    [[ "$m" != "127.0.0.1:$1" ]] || die "the sentinels still name $1 the master: wait for the failover"
    # as a replica from the start: a former master that came back as a
    # master would take writes until the sentinels turn it into a replica
    start_server "$dir" "$1" "${m##*:}"
    log "redis-server $1 restarted as a replica of $m"
}

case "${1:-}" in
start) start ;;
stop) cmd_stop_via stop_dir ;;
status) cmd_status_via status_dir ;;
master) master ;;
kill) kill_server "${2:?usage: $0 kill PORT}" ;;
restart) restart_server "${2:?usage: $0 restart PORT}" ;;
*) echo "usage: $0 start|stop|status|master|kill PORT|restart PORT" >&2; exit 2 ;;
esac
