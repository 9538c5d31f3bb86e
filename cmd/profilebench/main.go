// Command profilebench measures profiled end to end against a real Kafka
// broker and a real Redis, beside the two limits that bound it (raw
// consumption and the sink alone) and a naive baseline, in one run on one
// machine, and writes BENCHMARKS.md and a JSON summary. `make bench` runs
// it with the project's own services.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
	largeUsers, largeEvents    int // the second pipeline run (scale.go); 0 users: none
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
		partitions:     6,
		batchSize:      envInt("BENCH_BATCH_SIZE", 1000),
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

	// The broker was just started: its JIT compiles the fetch path during
	// the first reads (a fresh broker used 93% of a core for half a minute
	// under the latency load, 25% once warm), which no long-running broker
	// does. One untimed read of the topic, so that no measurement pays it.
	t = time.Now()
	if _, err := rawConsume(ctx, s, topic, "bench-warm-"+stamp); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	logf("warm-up: read the topic once, untimed, in %s", time.Since(t).Round(time.Millisecond))

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
	if std.Memory, err = redisMemory(ctx, rdb, "pipe-"+stamp+":", memSample); err != nil {
		return fmt.Errorf("memory per profile: %w", err)
	}
	logf("memory per profile: %s", std.Memory)
	r.ByUsers = append(r.ByUsers, std)

	// 2. raw consume
	logf("raw consume: kafka-go, no decoding, commit per batch")
	if r.RawConsume, err = rawConsume(ctx, s, topic, "bench-raw-"+stamp); err != nil {
		return fmt.Errorf("raw consume: %w", err)
	}
	logf("raw consume: %.0f events/s", r.RawConsume)

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

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startProfiled starts bin/profiled on topic; its log goes to stderr. When
// batchFile is given, profiled appends each batch it writes to it as a
// JSON line (consumer.BatchInfo, through its PROFILED_TEST_BATCH_LOG hook).
func startProfiled(s settings, topic, group, prefix, batchFile string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.binary)
	cmd.Env = append(os.Environ(),
		"PROFILED_KAFKA_BROKERS="+strings.Join(s.brokers, ","), "PROFILED_KAFKA_TOPICS="+topic,
		"PROFILED_KAFKA_GROUP="+group, "PROFILED_DLQ_TOPIC="+topic+"-dlq",
		"PROFILED_REDIS_URL="+s.redisURL, "PROFILED_REDIS_KEY_PREFIX="+prefix,
		"PROFILED_HTTP_ADDR="+addr, "PROFILED_LOG_LEVEL="+envStr("BENCH_LOG_LEVEL", "warn"), "PROFILED_DEFAULT_PHONE_REGION=IN",
		"PROFILED_BATCH_SIZE="+strconv.Itoa(s.batchSize))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if batchFile != "" {
		cmd.Env = append(cmd.Env, "PROFILED_TEST_BATCH_LOG="+batchFile)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run make build first): %w", s.binary, err)
	}
	p := &proc{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM and waits; it returns the process' CPU seconds and
// peak RSS in MiB. The peak is the kernel's high-water mark of the
// process' own address space (VmHWM, reset by exec), read before the
// signal: wait4's ru_maxrss would also count the pages the child shared
// with this process between fork and exec, and this process holds the
// whole workload in memory.
func (p *proc) stop() (float64, float64) {
	hwm := vmHWM(p.cmd.Process.Pid)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return cpu, hwm
}

func waitReady(ctx context.Context, p *proc) error {
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := c.Get("http://" + p.addr + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("profiled not ready within 60s")
}

func waitCaughtUp(ctx context.Context, conn kafkaconn.Config, group, topic string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		offs, err := conn.GroupOffsets(ctx, group, topic)
		if err == nil && len(offs) > 0 && kafkaconn.CaughtUp(offs) {
			committed := true
			for _, po := range offs {
				committed = committed && po.Committed >= 0
			}
			if committed {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("group %s not caught up within %s", group, limit)
}

type pipeResult struct {
	rate, cpu, rssMiB float64
	split             map[string]float64
	batches           []consumer.BatchInfo // each batch profiled wrote
}

// readBatches reads the batches profiled wrote to its batch log.
func readBatches(path string) ([]consumer.BatchInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []consumer.BatchInfo
	dec := json.NewDecoder(f)
	for {
		var b consumer.BatchInfo
		if err := dec.Decode(&b); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("batch log %s: %w", path, err)
		}
		out = append(out, b)
	}
}

func pipeline(ctx context.Context, s settings, conn kafkaconn.Config, topic, prefix, group string) (pipeResult, error) {
	kafkaPid, redisPid := servicePids(ctx, s)
	k0, r0 := cpuSeconds(kafkaPid), cpuSeconds(redisPid)
	start := time.Now()
	dir, err := os.MkdirTemp("", "profilebench-")
	if err != nil {
		return pipeResult{}, err
	}
	defer os.RemoveAll(dir)
	batchFile := filepath.Join(dir, "batches.jsonl")
	p, err := startProfiled(s, topic, group, prefix, batchFile)
	if err != nil {
		return pipeResult{}, err
	}
	if err := waitCaughtUp(ctx, conn, group, topic, 30*time.Minute); err != nil {
		p.stop()
		return pipeResult{}, err
	}
	d := time.Since(start)
	k1, r1 := cpuSeconds(kafkaPid), cpuSeconds(redisPid)
	cpu, rss := p.stop()
	batches, err := readBatches(batchFile)
	if err != nil {
		logf("the pipeline's batches could not be read back: %v", err)
	}
	return pipeResult{rate: float64(s.events) / d.Seconds(), cpu: cpu, rssMiB: rss, split: map[string]float64{
		"wall": d.Seconds(), "profiled": cpu, "kafka": k1 - k0, "redis": r1 - r0}, batches: batches}, nil
}
