#!/usr/bin/env bash
# Throw-away Redis Cluster for tests: 3 masters and 3 replicas from Debian's
# redis-server (cluster-enabled yes), created with redis-cli --cluster create.
#
#   deploy/redis-cluster.sh start    start it, wait for cluster_state:ok and every replica's first sync, print
#                                    REDIS_CLUSTER_ADDRS=127.0.0.1:P1,...
#   deploy/redis-cluster.sh stop     stop the nodes started by `start`
#   deploy/redis-cluster.sh status   report the nodes and the cluster state
#   deploy/redis-cluster.sh kill PORT     kill -9 one node (a fault: its replica
#                                         is promoted after cluster-node-timeout)
#   deploy/redis-cluster.sh restart PORT  start a stopped node again on its data
#                                         dir (it rejoins; a former master comes
#                                         back as a replica of its successor)
#   deploy/redis-cluster.sh failover PORT CLUSTER FAILOVER on a replica: it
#                                         becomes master without losing writes
#
# Environment:
#   PROFILED_CACHE              cache dir (default $HOME/.cache/profiled); holds
#                               redis-cluster.current, the running data dir
#   REDIS_CLUSTER_PORT          first port (default 17100); the nodes take
#                               6 consecutive ports
#   REDIS_CLUSTER_DATA_DIR      data dir for `start` (default: mktemp -d);
#                               for stop/status: which cluster (default: the
#                               one recorded in redis-cluster.current)
#   REDIS_CLUSTER_APPENDFSYNC   appendfsync of the nodes' AOF (default always)
#   REDIS_START_TIMEOUT         seconds to wait (default 30)
set -euo pipefail

# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CURRENT_FILE="$CACHE_DIR/redis-cluster.current"
BASE_PORT="${REDIS_CLUSTER_PORT:-17100}"
NODES=6
TIMEOUT="${REDIS_START_TIMEOUT:-30}"

resolve_data_dir() { recorded_data_dir REDIS_CLUSTER_DATA_DIR; }

ports_of() { # the ports recorded in a data dir
    local dir="$1"
    cat "$dir/ports" 2>/dev/null
}

start_node() { # dir port: one node on its own data dir (nodes.conf, AOF)
    local dir="$1" port="$2"
    mkdir -p "$dir/$port"
    echo "${REDIS_CLUSTER_APPENDFSYNC:-always}" >"$dir/$port/appendfsync"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/$port" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --appendonly yes --appendfsync "$(cat "$dir/$port/appendfsync")" --save '' \
        --maxmemory-policy noeviction \
        --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" >/dev/null
}

start() {
    ensure_redis redis-server redis-tools
    local dir="${REDIS_CLUSTER_DATA_DIR:-}"
    [[ -n "$dir" ]] || dir="$(mktemp -d -t profiled-redis-cluster.XXXXXX)"
    mkdir -p "$dir" "$CACHE_DIR"
    dir="$(cd "$dir" && pwd)" # canonical, as resolve_data_dir names it
    local ports=() addrs=()
    for ((i = 0; i < NODES; i++)); do
        local port=$((BASE_PORT + i))
        if port_open "$port"; then
            die "port 127.0.0.1:$port is already in use (set REDIS_CLUSTER_PORT)"
        fi
        ports+=("$port")
        addrs+=("127.0.0.1:$port")
    done
    echo "${ports[*]}" >"$dir/ports"
    echo "$dir" >"$CURRENT_FILE"
    for port in "${ports[@]}"; do
        start_node "$dir" "$port"
    done
    local deadline=$((SECONDS + TIMEOUT))
    for port in "${ports[@]}"; do
        until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
            ((SECONDS < deadline)) || die "node $port did not answer PING within ${TIMEOUT}s"
            sleep 0.1
        done
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 ||
        { cat "$dir/create.log" >&2; die "redis-cli --cluster create failed"; }
    for port in "${ports[@]}"; do
        until redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; do
            ((SECONDS < deadline)) || die "node $port did not reach cluster_state:ok within ${TIMEOUT}s"
            sleep 0.2
        done
    done
    # every replica done with its first sync: until then a WAIT for one
    # replica (MIN_REPLICAS=1) times out on a just-started cluster
    for port in "${ports[@]}"; do
        redis-cli -p "$port" role 2>/dev/null | head -1 | grep -q slave || continue
        until redis-cli -p "$port" info replication 2>/dev/null | grep -q 'master_link_status:up'; do
            ((SECONDS < deadline)) || die "replica $port did not finish its first sync within ${TIMEOUT}s"
            sleep 0.1
        done
    done
    log "cluster ready on ${addrs[*]}, data dir $dir"
    local IFS=,
    echo "REDIS_CLUSTER_ADDRS=${addrs[*]}"
}

stop_dir() { # dir: stop the nodes recorded in it and remove it
    local dir="$1"
    for port in $(ports_of "$dir"); do
        stop_redis "$dir/$port/redis.pid" redis-server "$port"
    done
    remove_data_dir "$dir"
}

node_line() { # port: a node's line of `status`: its role and the cluster state
    echo "127.0.0.1:$1 $(redis-cli -p "$1" role | head -1) $(redis-cli -p "$1" cluster info | grep cluster_state | tr -d '\r')"
}

# shellcheck disable=SC2046 # the ports, one word each
status_dir() { status_lines "" node_line $(ports_of "$1"); }

node_dir() { # port: the node's directory in the recorded cluster
    local dir port="$1"
    [[ "$port" =~ ^[0-9]+$ ]] || die "not a port: $port"
    dir="$(resolve_data_dir)"
    [[ -n "$dir" && -d "$dir/$port" ]] || die "no node $port in the recorded cluster"
    echo "$dir"
}

kill_node() {
    local dir
    dir="$(node_dir "$1")"
    kill_redis "$dir" "$1" node
}

restart_node() {
    local dir
    dir="$(node_dir "$1")"
    ! redis-cli -p "$1" ping >/dev/null 2>&1 || die "node $1 is running"
    start_node "$dir" "$1"
    local deadline=$((SECONDS + TIMEOUT))
    until redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; do
        ((SECONDS < deadline)) || die "node $1 did not answer PING within ${TIMEOUT}s"
        sleep 0.1
    done
    log "node $1 restarted"
}

failover() {
    node_dir "$1" >/dev/null
    redis-cli -p "$1" role | head -1 | grep -q slave || die "node $1 is not a replica"
    redis-cli -p "$1" cluster failover | grep -q OK || die "CLUSTER FAILOVER on $1 refused"
    local deadline=$((SECONDS + TIMEOUT))
    until redis-cli -p "$1" role 2>/dev/null | head -1 | grep -q master; do
        ((SECONDS < deadline)) || die "node $1 did not become master within ${TIMEOUT}s"
        sleep 0.1
    done
    log "node $1 is master"
}

case "${1:-}" in
start) start ;;
stop) cmd_stop_via stop_dir ;;
status) cmd_status_via status_dir ;;
kill) kill_node "${2:?usage: $0 kill PORT}" ;;
restart) restart_node "${2:?usage: $0 restart PORT}" ;;
failover) failover "${2:?usage: $0 failover PORT}" ;;
*) echo "usage: $0 start|stop|status|kill PORT|restart PORT|failover PORT" >&2; exit 2 ;;
esac
