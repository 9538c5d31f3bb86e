#!/usr/bin/env bash
# deploy/testenv.sh CMD [ARGS...]
#
# Runs CMD with real test services and exits with CMD's exit code:
#   - unless PROFILED_TEST_KAFKA_BROKERS is set, starts a single-node Kafka
#     (deploy/kafka.sh) and exports PROFILED_TEST_KAFKA_BROKERS=127.0.0.1:PORT;
#   - unless PROFILED_TEST_REDIS_URL is set, starts a redis-server
#     (deploy/redis.sh) and exports PROFILED_TEST_REDIS_URL=redis://...;
#   - exports PROFILED_TEST_REDIS_SERVER=$(command -v redis-server) (unless set)
#     so tests can start extra redis processes themselves;
#   - unless PROFILED_TEST_REDIS_CLUSTER_ADDRS is set, or TESTENV_CLUSTER=0,
#     starts a 3-master Redis Cluster (deploy/redis-cluster.sh) and exports
#     PROFILED_TEST_REDIS_CLUSTER_ADDRS=127.0.0.1:P1,...
# Whatever it started is stopped again on exit (also on failure / Ctrl-C).
# KAFKA_PORT, KAFKA_CONTROLLER_PORT and REDIS_PORT are passed through.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

log() { echo "testenv.sh: $*" >&2; }

ENV_DIR="$(mktemp -d -t profiled-testenv.XXXXXX)"
KAFKA_DIR=""       # set once we launch kafka.sh start
REDIS_DIR=""       # set once we launch redis.sh start
CLUSTER_DIR=""     # set once we launch redis-cluster.sh start
KAFKA_START_PID="" # background kafka.sh start, while it runs

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n "$KAFKA_START_PID" ]]; then
        # kafka.sh start is bounded by its own timeout; let it finish so that
        # the broker's pid file exists before we stop it.
        wait "$KAFKA_START_PID" 2>/dev/null
    fi
    if [[ -n "$KAFKA_DIR" && -d "$KAFKA_DIR" ]]; then
        KAFKA_DATA_DIR="$KAFKA_DIR" "$SCRIPT_DIR/kafka.sh" stop
    fi
    if [[ -n "$REDIS_DIR" && -d "$REDIS_DIR" ]]; then
        REDIS_DATA_DIR="$REDIS_DIR" "$SCRIPT_DIR/redis.sh" stop
    fi
    if [[ -n "$CLUSTER_DIR" && -d "$CLUSTER_DIR" ]]; then
        REDIS_CLUSTER_DATA_DIR="$CLUSTER_DIR" "$SCRIPT_DIR/redis-cluster.sh" stop
    fi
    rm -rf "$ENV_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_kafka=0
start_redis=0
[[ -z "${PROFILED_TEST_KAFKA_BROKERS:-}" ]] && start_kafka=1
[[ -z "${PROFILED_TEST_REDIS_URL:-}" ]] && start_redis=1

# Kafka takes seconds to start; run it in the background while redis starts.
if [[ "$start_kafka" == 1 ]]; then
    KAFKA_DIR="$ENV_DIR/kafka"
    KAFKA_DATA_DIR="$KAFKA_DIR" "$SCRIPT_DIR/kafka.sh" start >"$ENV_DIR/kafka.out" &
    KAFKA_START_PID=$!
fi

if [[ "$start_redis" == 1 ]]; then
    REDIS_DIR="$ENV_DIR/redis"
    REDIS_DATA_DIR="$REDIS_DIR" "$SCRIPT_DIR/redis.sh" start >"$ENV_DIR/redis.out"
    PROFILED_TEST_REDIS_URL="$(sed -n 's/^REDIS_URL=//p' "$ENV_DIR/redis.out")"
    [[ -n "$PROFILED_TEST_REDIS_URL" ]] || { log "redis.sh start printed no REDIS_URL"; exit 1; }
    export PROFILED_TEST_REDIS_URL
fi

if [[ "$start_kafka" == 1 ]]; then
    kafka_rc=0
    wait "$KAFKA_START_PID" || kafka_rc=$?
    KAFKA_START_PID=""
    if [[ "$kafka_rc" != 0 ]]; then
        log "kafka.sh start failed (exit $kafka_rc)"
        exit 1
    fi
    PROFILED_TEST_KAFKA_BROKERS="$(sed -n 's/^KAFKA_BROKERS=//p' "$ENV_DIR/kafka.out")"
    [[ -n "$PROFILED_TEST_KAFKA_BROKERS" ]] || { log "kafka.sh start printed no KAFKA_BROKERS"; exit 1; }
    export PROFILED_TEST_KAFKA_BROKERS
    # the broker's pid, for the benchmark's CPU split (other brokers may run)
    if [[ -f "$KAFKA_DIR/kafka.pid" ]]; then
        PROFILED_TEST_KAFKA_PID="$(cat "$KAFKA_DIR/kafka.pid")"
        export PROFILED_TEST_KAFKA_PID
    fi
fi

if [[ -z "${PROFILED_TEST_REDIS_CLUSTER_ADDRS:-}" && "${TESTENV_CLUSTER:-1}" != 0 ]]; then
    CLUSTER_DIR="$ENV_DIR/cluster"
    REDIS_CLUSTER_DATA_DIR="$CLUSTER_DIR" "$SCRIPT_DIR/redis-cluster.sh" start >"$ENV_DIR/cluster.out"
    PROFILED_TEST_REDIS_CLUSTER_ADDRS="$(sed -n 's/^REDIS_CLUSTER_ADDRS=//p' "$ENV_DIR/cluster.out")"
    [[ -n "$PROFILED_TEST_REDIS_CLUSTER_ADDRS" ]] || { log "redis-cluster.sh start printed no REDIS_CLUSTER_ADDRS"; exit 1; }
    export PROFILED_TEST_REDIS_CLUSTER_ADDRS
fi

if [[ -z "${PROFILED_TEST_REDIS_SERVER:-}" ]] && command -v redis-server >/dev/null; then
    PROFILED_TEST_REDIS_SERVER="$(command -v redis-server)"
    export PROFILED_TEST_REDIS_SERVER
fi

log "PROFILED_TEST_KAFKA_BROKERS=${PROFILED_TEST_KAFKA_BROKERS:-} PROFILED_TEST_REDIS_URL=${PROFILED_TEST_REDIS_URL:-} PROFILED_TEST_REDIS_CLUSTER_ADDRS=${PROFILED_TEST_REDIS_CLUSTER_ADDRS:-}"

# Not exec: the EXIT trap must run afterwards to stop the services. CMD runs
# as a child we `wait` for, so that INT/TERM sent to this script are handled
# at once (forwarded to CMD, then cleanup) instead of after CMD finishes.
# `<&0` keeps CMD's stdin (a background job would get /dev/null otherwise).
forward() {
    local sig="$1" code="$2"
    trap - INT TERM
    if [[ -n "$CMD_PID" ]]; then
        kill -s "$sig" "$CMD_PID" 2>/dev/null || true
        wait "$CMD_PID" 2>/dev/null || true
    fi
    exit "$code"
}
CMD_PID=""
trap 'forward INT 130' INT
trap 'forward TERM 143' TERM
"$@" <&0 &
CMD_PID=$!
cmd_rc=0
wait "$CMD_PID" || cmd_rc=$?
CMD_PID=""
exit "$cmd_rc"
