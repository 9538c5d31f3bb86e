# profiled — the front door. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION)
FUZZTIME ?= 300000x

.PHONY: help build run test test-short test-go fuzz test-faults test-cluster lint bench bench-cluster bench-script bench-export services-up clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

build: ## build bin/profiled and bin/profilectl
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/profiled ./cmd/profiled
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/profilectl ./cmd/profilectl

run: ## zero set-up quick start: embedded Kafka and Redis, sample events, profiles printed
	PROFILED_EMBEDDED=true PROFILED_LOG_FORMAT=$${PROFILED_LOG_FORMAT:-console} \
	PROFILED_EMBEDDED_SAMPLE=$${PROFILED_EMBEDDED_SAMPLE:-testdata/sample-events.jsonl} \
	PROFILED_DEFAULT_PHONE_REGION=$${PROFILED_DEFAULT_PHONE_REGION:-IN} \
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/profiled

test: ## every test with -race against real Kafka and Redis (started here unless given), plus bounded fuzzing
	deploy/testenv.sh $(MAKE) --no-print-directory test-go fuzz

test-go:
	$(GO) build -o bin/profiled ./cmd/profiled
	PROFILED_TEST_BINARY=$(CURDIR)/bin/profiled $(GO) test -race -count=1 -timeout 30m ./...

test-short: ## unit tests only: no services needed
	$(GO) test -race -short -count=1 ./...

fuzz: ## run each fuzz target for FUZZTIME
	$(GO) test ./profile -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./profile -run '^$$' -fuzz '^FuzzMerge$$' -fuzztime $(FUZZTIME)
	$(GO) test ./profile -run '^$$' -fuzz '^FuzzShortestAsSent$$' -fuzztime $(FUZZTIME)

# The fault suite runs its own broker (KAFKA_PORT 39092, or
# PROFILED_FAULTS_KAFKA_PORT) and its own redis-servers (36379 up), so it
# needs no testenv.sh; it prints one line per scenario and, last,
# "faults: <n> scenarios, <m> events, <lost> lost, <dup> double-counted".
# The binaries go to bin/faults/ so that a concurrent make test cannot swap
# bin/profiled under it. Only TestFaults runs here: the package's other
# tests (the model's unit tests, and one that needs make test's broker)
# run under make test.
test-faults: ## fault suite: kill -9, rebalances, Redis and broker restarts, slow Redis, replay (internal/faults/; ~5 min)
	@mkdir -p bin/faults
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/faults/profiled ./cmd/profiled
	$(GO) test -c -race -o bin/faults/faults.test ./internal/faults
	cd internal/faults && PROFILED_FAULTS=1 PROFILED_TEST_BINARY=$(CURDIR)/bin/faults/profiled \
		../../bin/faults/faults.test -test.run '^TestFaults$$' -test.count=1 -test.timeout 30m

# The cluster suite (internal/faults/cluster_*_test.go, PROFILED_CLUSTER=1)
# runs its own broker (19892), Redis Cluster (17200-17205, from
# deploy/redis-cluster.sh), Sentinel set-up (17400-17405, from
# deploy/redis-sentinel.sh) and single servers (17420 up): none of the
# fault suite's ports, so the two may run at once. It prints one line per
# scenario and, last,
# "cluster: <n> scenarios, <m> events, <lost> lost, <dup> double-counted".
# PROFILED_CLUSTER_EVENTS (default 50000 per scenario) and
# PROFILED_CLUSTER_PACE (default 40s, the time over which the fault
# scenarios produce their stream) size it.
test-cluster: ## cluster suite: one instance vs three on a Redis Cluster; Cluster and Sentinel failovers and resharding under load (internal/faults/; ~4 min)
	@mkdir -p bin/cluster
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/cluster/profiled ./cmd/profiled
	$(GO) test -c -race -o bin/cluster/faults.test ./internal/faults
	cd internal/faults && PROFILED_CLUSTER=1 PROFILED_TEST_BINARY=$(CURDIR)/bin/cluster/profiled \
		../../bin/cluster/faults.test -test.run '^TestCluster$$' -test.count=1 -test.timeout 20m

# make bench measures, in one run: the pipeline, raw consume, sink only,
# the Redis floor (plain HSETs of the same batches' profiles), naive, the
# latency at 10,000 events/s, and the pipeline again at BENCH_LARGE_USERS
# (default 1000000) distinct users on BENCH_LARGE_EVENTS (default 300000)
# records; BENCH_LARGE_USERS=0 skips that run. It writes BENCH_MD (default
# BENCHMARKS.md), its charts beside it (BENCHMARKS-cpu.svg, -latency.svg,
# -users.svg) and the JSON summary BENCH_OUT (default bench-out.json): set
# both for a trial run that must not replace the repository's.
bench: build ## end-to-end benchmark against real Kafka and Redis: BENCHMARKS.md, its SVG charts and $$BENCH_OUT (BENCH_EVENTS, default 1000000)
	TESTENV_CLUSTER=0 deploy/testenv.sh $(GO) run ./cmd/profilebench

# The cluster mode of the benchmark: one to three instances on the Redis
# Cluster that testenv.sh starts, beside the single server; its table goes
# to cmd/profilebench/CLUSTER.md and, by make bench, into BENCHMARKS.md.
bench-cluster: build ## benchmark on a 3-master Redis Cluster: 1, 2, 3 instances, MIN_REPLICAS 0 and 1, beside the single server (BENCH_EVENTS, default 300000)
	BENCH_ONLY=cluster BENCH_EVENTS=$${BENCH_EVENTS:-300000} deploy/testenv.sh $(GO) run ./cmd/profilebench

# The apply script's cost in instructions, which do not wander with the
# machine's load as CPU seconds do: sink only into a Redis under callgrind
# (needs valgrind). Edit sink/apply.lua and run it again to compare.
bench-script: ## instructions per EVALSHA and where they go, counted by callgrind (BENCH_EVENTS, default 100000; needs valgrind)
	BENCH_ONLY=script BENCH_EVENTS=$${BENCH_EVENTS:-100000} TESTENV_CLUSTER=0 deploy/testenv.sh $(GO) run ./cmd/profilebench

# Only Redis is needed: a broker address that is never dialled keeps testenv.sh from starting Kafka.
bench-export: ## export benchmark: PROFILED_EXPORT_PROFILES (default 1000000) profiles to Parquet from a fresh local Redis: rate, peak RSS, CPU
	PROFILED_TEST_KAFKA_BROKERS=unused:9 deploy/testenv.sh $(GO) test ./cmd/profilectl -run '^$$' -bench '^BenchmarkExportParquet$$' -benchtime 1x -timeout 30m -v

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

HELM_VERSION ?= v3.22.0
HELM := $(CURDIR)/bin/tools/helm
PROMTOOL ?= promtool
CHART := deploy/helm/profiled

.PHONY: deploy-check tools
deploy-check: $(HELM) ## check deploy/: alert rules and their tests (promtool), the Helm chart (lint, template, manifest tests), compose file, Dockerfile, metric names
	@command -v $(PROMTOOL) >/dev/null || { echo "promtool is missing: install Debian's prometheus package" >&2; exit 1; }
	$(PROMTOOL) check rules $(CHART)/files/profiled-alerts.yaml
	$(PROMTOOL) test rules deploy/monitoring/profiled-alerts_test.yaml
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/full-values.yaml
	$(HELM) lint --strict $(CHART) --set 'kafka.brokers={kafka:9092}'
	@mkdir -p bin/deploy
	$(HELM) template profiled $(CHART) -f $(CHART)/ci/full-values.yaml > bin/deploy/rendered.yaml
	PROFILED_HELM=$(HELM) PROFILED_DEPLOY_RENDERED=$(CURDIR)/bin/deploy/rendered.yaml $(GO) test -count=1 ./deploy/...

tools: $(HELM) ## build the tools deploy-check needs (helm) into bin/tools

$(HELM):
	GOBIN=$(CURDIR)/bin/tools $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

services-up: ## start real Kafka and Redis and open a shell with PROFILED_TEST_* set
	deploy/testenv.sh bash

clean:
	rm -rf bin
