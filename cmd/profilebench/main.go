// Command profilebench measures profiled end to end against a real Kafka
// broker and a real Redis, beside the limits that bound it (raw
// consumption, the sink alone, and the Redis floor: the same profiles as
// plain HSETs) and a naive baseline, in one run on one machine, with the
// CPU of each process per million events, the pipeline again at more
// distinct users and Redis memory per profile, and writes BENCHMARKS.md,
// its SVG charts and a JSON summary. `make bench` runs it with the
// project's own services.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/internal/feed"
	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

type settings struct {
	events, users, naiveEvents int
	latencyRate                int
	latencySeconds             int
	latencyWarmup              int
	partitions                 int
	batchSize                  int
	brokers                    []string
	redisURL                   string
	binary                     string
	out, md                    string
	kafkaVersion               string
	largeUsers, largeEvents    int              // the second pipeline run (scale.go); 0 users: none
	sinkClock                  func() time.Time // sink only's clock; nil: the wall clock
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// envCount is envInt that also takes 0 (for "none").
func envCount(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "profilebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	s := settings{
		events:         envInt("BENCH_EVENTS", 1_000_000),
		users:          envInt("BENCH_USERS", 100_000),
		naiveEvents:    envInt("BENCH_NAIVE_EVENTS", 50_000),
		latencyRate:    envInt("BENCH_LATENCY_RATE", 10_000),
		latencySeconds: envInt("BENCH_LATENCY_SECONDS", 30),
		latencyWarmup:  envInt("BENCH_LATENCY_WARMUP", 30),
		partitions:     envInt("BENCH_PARTITIONS", 6),
		batchSize:      envInt("BENCH_BATCH_SIZE", consumer.DefaultConfig().BatchSize), // profiled's own default
		brokers:        strings.Split(os.Getenv("PROFILED_TEST_KAFKA_BROKERS"), ","),
		redisURL:       os.Getenv("PROFILED_TEST_REDIS_URL"),
		binary:         envStr("BENCH_PROFILED", "bin/profiled"),
		out:            envStr("BENCH_OUT", "bench-out.json"),
		md:             envStr("BENCH_MD", "BENCHMARKS.md"),
		kafkaVersion:   envStr("BENCH_KAFKA_VERSION", "4.1.1"),
		largeUsers:     envCount("BENCH_LARGE_USERS", 1_000_000),
		largeEvents:    envInt("BENCH_LARGE_EVENTS", 300_000),
	}
	if s.brokers[0] == "" || s.redisURL == "" {
		return errors.New("PROFILED_TEST_KAFKA_BROKERS and PROFILED_TEST_REDIS_URL are required (make bench sets them)")
	}
	s.naiveEvents = min(s.naiveEvents, s.events)
	s.largeEvents = min(s.largeEvents, s.events)
	opts, err := redis.ParseURL(s.redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	conn := kafkaconn.Config{Brokers: s.brokers}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	r := &results{Events: s.events, Users: s.users}

	logf("generating %d events over %d users", s.events, s.users)
	values := workload{events: s.events, users: s.users, seed: 1, base: time.Now().Add(-2 * time.Hour)}.generate()
	if f, err := os.Create(os.Getenv("BENCH_CPUPROFILE")); err == nil {
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if os.Getenv("BENCH_ONLY") == "latency" {
		// for working on latency alone (or, below, on the pipeline): no
		// table, no files
		lat, err := latency(ctx, s, conn, rdb, stamp, values)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		logf("latency: p50 %.1f ms, p99 %.1f ms (%s)", lat.p50, lat.p99, lat.note)
		logf("latency window: %s", lat.window)
		return nil
	}
	if os.Getenv("BENCH_ONLY") == "cluster" {
		return clusterBench(ctx, s, conn, rdb, stamp, values) // cluster.go
	}
	topic := "bench-" + stamp
	if err := conn.CreateTopic(ctx, topic, s.partitions); err != nil {
		return err
	}
	t := time.Now()
	if err := produce(ctx, s.brokers, topic, values); err != nil {
		return err
	}
	logf("filled %s (%d partitions) in %s", topic, s.partitions, time.Since(t).Round(time.Millisecond))
	if os.Getenv("BENCH_ONLY") == "script" {
		return scriptCost(ctx, s, topic, stamp) // script.go
	}
	if os.Getenv("BENCH_ONLY") == "ceiling" {
		// raw consume and the ceilings alone, after one untimed read
		// that compiles the fresh broker's fetch path
		if _, err := rawConsume(ctx, s, topic, "bench-warm-"+stamp); err != nil {
			return err
		}
		return consumeBounds(ctx, s, rdb, topic, stamp, r)
	}

	// The broker was just started: its JIT compiles the fetch path during
	// the first reads (a fresh broker used 93% of a core for half a minute
	// under the latency load, 25% once warm), and the commit and produce
	// paths during the first pipeline (8.1-8.4 CPU-s per million events in
	// the first pipeline after a broker start, 3.3-6.1 in later ones; a
	// warm-up of 100,000 records still left 7.4-7.5), which no
	// long-running broker does. One untimed pipeline over the whole topic,
	// so that no measurement pays it.
	t = time.Now()
	if r.warm, err = warmPipeline(ctx, s, conn, rdb, stamp, topic); err != nil {
		return fmt.Errorf("warm-up pipeline: %w", err)
	}
	logf("warm-up: one untimed pipeline in %s", time.Since(t).Round(time.Millisecond))

	// 1. pipeline
	logf("pipeline: profiled from the first offset to zero lag")
	pr, err := pipeline(ctx, s, conn, topic, "pipe-"+stamp+":", "bench-pipe-"+stamp)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	r.Pipeline = pr.rate
	r.CPUPerMillion = pr.cpu / float64(s.events) * 1e6
	r.PeakRSSMiB = pr.rssMiB
	r.split = pr.split
	std := usersRun{Users: s.users, Events: s.events, Rate: pr.rate}
	std.setCPU(pr.split, s.events)
	r.CPUProfiled, r.CPURedis, r.CPUBroker, r.CPUTotal = std.CPUProfiled, std.CPURedis, std.CPUBroker, std.CPUTotal
	logf("pipeline: %.0f events/s, %.1f CPU-s per million, peak RSS %.1f MiB", pr.rate, r.CPUPerMillion, pr.rssMiB)
	if os.Getenv("BENCH_ONLY") == "pipeline" {
		logf("pipeline: CPU-s profiled %.1f, Redis %.1f, broker %.1f over %.1f s", pr.split["profiled"], pr.split["redis"], pr.split["kafka"], pr.split["wall"])
		return nil
	}
	if std.Memory, err = redisMemory(ctx, rdb, "pipe-"+stamp+":"); err != nil {
		return fmt.Errorf("memory per profile: %w", err)
	}
	logf("memory per profile: %s", std.Memory)
	r.ByUsers = append(r.ByUsers, std)

	// 2. raw consume
	logf("raw consume: kafka-go, no decoding, commit per batch")
	if err := consumeBounds(ctx, s, rdb, topic, stamp, r); err != nil {
		return err
	}

	// 3. sink only, from an empty Redis as the pipeline started: the
	// pipeline's keys go first (only the benchmark's own, by prefix)
	n, err := dropPrefix(ctx, rdb, "pipe-"+stamp+":")
	if err != nil {
		return fmt.Errorf("clearing the pipeline's keys: %w", err)
	}
	logf("removed the pipeline run's %d keys", n)
	logf("sink only: the sink applying the pipeline's batches to an empty key space")
	sr, err := sinkOnly(ctx, s, rdb, topic, "sink-"+stamp+":", pr.batches)
	if err != nil {
		return fmt.Errorf("sink only: %w", err)
	}
	r.SinkOnly, r.sinkSplit = sr.rate, sr.split
	r.ScriptUsec, r.scriptCalls = sr.scriptUsec, sr.scriptCalls
	logf("sink only: %.0f events/s (CPU-s Redis %.1f, profilebench %.1f over %.1f s); Redis: %d EVALSHA, %.1f µs each",
		r.SinkOnly, r.sinkSplit["redis"], r.sinkSplit["bench"], r.sinkSplit["wall"], sr.scriptCalls, sr.scriptUsec)

	// 4. the Redis floor: the same batches' resulting fields as plain HSETs
	logf("Redis floor: the same batches' profile fields as pipelined HSETs, no script")
	if r.floor, err = redisFloor(ctx, s, rdb, "floor-"+stamp+":", sr.batches); err != nil {
		return fmt.Errorf("redis floor: %w", err)
	}
	r.RedisFloor, r.FloorHSetUsec = r.floor.rate, r.floor.hsetUsec
	logf("Redis floor: %.0f events/s (%d HSETs of %.1f fields, %.1f µs each in Redis; Redis CPU %.1f s over %.1f s)",
		r.RedisFloor, r.floor.hsets, r.floor.fieldsPer, r.floor.hsetUsec, r.floor.redisCPU, r.floor.wallS)
	sr.batches = nil

	// 5. naive
	logf("naive: one record at a time, %d records", s.naiveEvents)
	if r.Naive, err = naive(ctx, s, rdb, topic, "bench-naive-"+stamp, "naive-"+stamp+":"); err != nil {
		return fmt.Errorf("naive: %w", err)
	}
	logf("naive: %.0f events/s", r.Naive)

	// 6. latency
	logf("latency: %d events/s for %ds", s.latencyRate, s.latencySeconds)
	lat, err := latency(ctx, s, conn, rdb, stamp, values)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	r.P50, r.P99, r.latencyNote, r.latencyWindow, r.latencyMS = lat.p50, lat.p99, lat.note, lat.window, lat.ms
	logf("latency: p50 %.1f ms, p99 %.1f ms (%s)", lat.p50, lat.p99, lat.note)
	logf("latency window: %s", lat.window)

	// 7. the pipeline again at more distinct users (scale.go)
	if s.largeUsers > 0 {
		big, err := usersPipeline(ctx, s, conn, rdb, stamp)
		if err != nil {
			return fmt.Errorf("pipeline at %d users: %w", s.largeUsers, err)
		}
		r.ByUsers = append(r.ByUsers, big)
	}

	r.ratios()
	info, _ := rdb.InfoMap(ctx, "server").Result()
	r.redisVersion = info["Server"]["redis_version"]
	return r.write(s)
}

// consumeBounds measures raw consume and the two ceilings above it
// (ceiling.go) into r.
func consumeBounds(ctx context.Context, s settings, rdb *redis.Client, topic, stamp string, r *results) error {
	var err error
	if r.raw, err = rawConsume(ctx, s, topic, "bench-raw-"+stamp); err != nil {
		return fmt.Errorf("raw consume: %w", err)
	}
	r.RawConsume = r.raw.rate
	logf("raw consume: %.0f events/s (CPU-s per million: profilebench %.1f, broker %.1f)",
		r.RawConsume, r.raw.perMillion("bench", s.events), r.raw.perMillion("kafka", s.events))

	// the ceilings (ceiling.go): raw consume plus decoding and folding,
	// then plus the floor's writes
	if r.decodeCeil, err = consumeCeiling(ctx, s, nil, topic, "bench-decode-"+stamp, "", false); err != nil {
		return fmt.Errorf("decode ceiling: %w", err)
	}
	r.DecodeCeiling = r.decodeCeil.rate
	logf("decode ceiling: %.0f events/s (CPU-s per million: profilebench %.1f, broker %.1f)",
		r.DecodeCeiling, r.decodeCeil.perMillion("bench", s.events), r.decodeCeil.perMillion("kafka", s.events))
	if r.storeCeil, err = consumeCeiling(ctx, s, rdb, topic, "bench-store-"+stamp, "store-"+stamp+":", false); err != nil {
		return fmt.Errorf("store ceiling: %w", err)
	}
	r.StoreCeiling = r.storeCeil.rate
	logf("store ceiling: %.0f events/s, %d HSETs (CPU-s per million: profilebench %.1f, broker %.1f, Redis %.1f)",
		r.StoreCeiling, r.storeCeil.written, r.storeCeil.perMillion("bench", s.events), r.storeCeil.perMillion("kafka", s.events), r.storeCeil.perMillion("redis", s.events))
	if r.dedupeCeil, err = consumeCeiling(ctx, s, rdb, topic, "bench-dedupe-"+stamp, "dedupe-"+stamp+":", true); err != nil {
		return fmt.Errorf("dedupe ceiling: %w", err)
	}
	r.DedupeCeiling = r.dedupeCeil.rate
	logf("dedupe ceiling: %.0f events/s, %d HSETs and ZADDs (CPU-s per million: profilebench %.1f, broker %.1f, Redis %.1f)",
		r.DedupeCeiling, r.dedupeCeil.written, r.dedupeCeil.perMillion("bench", s.events), r.dedupeCeil.perMillion("kafka", s.events), r.dedupeCeil.perMillion("redis", s.events))
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func produce(ctx context.Context, brokers []string, topic string, values [][]byte) error {
	w := feed.NewWriter(brokers, topic, nil)
	defer w.Close()
	msgs := make([]kafka.Message, 0, 5000)
	for i, v := range values {
		msgs = append(msgs, kafka.Message{Key: feed.Key(v), Value: v})
		if len(msgs) == cap(msgs) || i == len(values)-1 {
			if err := writeRetry(ctx, w, msgs); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

// writeRetry retries a write while a new topic's leaders settle.
func writeRetry(ctx context.Context, w *kafka.Writer, msgs []kafka.Message) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
