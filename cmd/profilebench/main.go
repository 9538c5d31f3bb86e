// Command profilebench measures profiled end to end against a real Kafka
// broker and a real Redis, beside the two limits that bound it (raw
// consumption and the sink alone) and a naive baseline, in one run on one
// machine, and writes BENCHMARKS.md and a JSON summary. `make bench` runs
// it with the project's own services.
package main

import (
	"bufio"
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
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/internal/feed"
	kafkaconn "github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
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
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
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
	}
	if s.brokers[0] == "" || s.redisURL == "" {
		return errors.New("PROFILED_TEST_KAFKA_BROKERS and PROFILED_TEST_REDIS_URL are required (make bench sets them)")
	}
	s.naiveEvents = min(s.naiveEvents, s.events)
	opts, err := redis.ParseURL(s.redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	conn := kafkaconn.Config{Brokers: s.brokers}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	r := &results{Events: s.events}

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
	logf("pipeline: %.0f events/s, %.1f CPU-s per million, peak RSS %.1f MiB", pr.rate, r.CPUPerMillion, pr.rssMiB)
	if os.Getenv("BENCH_ONLY") == "pipeline" {
		logf("pipeline: CPU-s profiled %.1f, Redis %.1f, broker %.1f over %.1f s", pr.split["profiled"], pr.split["redis"], pr.split["kafka"], pr.split["wall"])
		return nil
	}

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
	if r.SinkOnly, r.sinkSplit, err = sinkOnly(ctx, s, rdb, topic, "sink-"+stamp+":", pr.batches); err != nil {
		return fmt.Errorf("sink only: %w", err)
	}
	logf("sink only: %.0f events/s (CPU-s Redis %.1f, profilebench %.1f over %.1f s)", r.SinkOnly, r.sinkSplit["redis"], r.sinkSplit["bench"], r.sinkSplit["wall"])

	// 4. naive
	logf("naive: one record at a time, %d records", s.naiveEvents)
	if r.Naive, err = naive(ctx, s, rdb, topic, "bench-naive-"+stamp, "naive-"+stamp+":"); err != nil {
		return fmt.Errorf("naive: %w", err)
	}
	logf("naive: %.0f events/s", r.Naive)

	// 5. latency
	logf("latency: %d events/s for %ds", s.latencyRate, s.latencySeconds)
	lat, err := latency(ctx, s, conn, rdb, stamp, values)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	r.P50, r.P99, r.latencyNote, r.latencyWindow = lat.p50, lat.p99, lat.note, lat.window
	logf("latency: p50 %.1f ms, p99 %.1f ms (%s)", lat.p50, lat.p99, lat.note)
	logf("latency window: %s", lat.window)

	r.RatioVsLimit = r.Pipeline / min(r.RawConsume, r.SinkOnly)
	r.RatioVsNaive = r.Pipeline / r.Naive
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

// vmHWM returns a process' peak resident set in MiB, from /proc.
func vmHWM(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
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

// servicePids finds the broker's and Redis' processes, for their CPU time.
func servicePids(ctx context.Context, s settings) (kafkaPid, redisPid int) {
	kafkaPid = findPid("kafka.Kafka")
	if pid, err := strconv.Atoi(os.Getenv("PROFILED_TEST_KAFKA_PID")); err == nil {
		kafkaPid = pid // make bench's own broker, when others run too
	}
	if opts, err := redis.ParseURL(s.redisURL); err == nil {
		c := redis.NewClient(opts)
		if info, err := c.InfoMap(ctx, "server").Result(); err == nil {
			redisPid, _ = strconv.Atoi(info["Server"]["process_id"])
		}
		c.Close()
	}
	return kafkaPid, redisPid
}

// cpuSeconds reads a process' user+system CPU time from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// findPid returns the first process whose command line contains needle.
func findPid(needle string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), needle) {
			return pid
		}
	}
	return 0
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

// rawConsume is one bound: kafka-go reading the topic in a fresh group,
// decoding nothing, committing once per batch.
func rawConsume(ctx context.Context, s settings, topic, group string) (float64, error) {
	start := time.Now()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: s.batchSize, StartOffset: kafka.FirstOffset})
	defer r.Close()
	last := map[int]kafka.Message{}
	n := 0
	for n < s.events {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return 0, err
		}
		n++
		last[m.Partition] = m
		if n%s.batchSize == 0 || n == s.events {
			msgs := make([]kafka.Message, 0, len(last))
			for _, lm := range last {
				msgs = append(msgs, lm)
			}
			if err := r.CommitMessages(ctx, msgs...); err != nil {
				return 0, err
			}
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// readTopic reads every record of topic with its partition and offset.
func readTopic(ctx context.Context, s settings, topic string) ([][]kafka.Message, error) {
	parts := make([][]kafka.Message, s.partitions)
	total := 0
	for p := 0; p < s.partitions; p++ {
		c, err := kafka.DialLeader(ctx, "tcp", s.brokers[0], topic, p)
		if err != nil {
			return nil, err
		}
		end, err := c.ReadLastOffset()
		c.Close()
		if err != nil {
			return nil, err
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, Topic: topic, Partition: p, MaxBytes: 8 << 20, QueueCapacity: 5000, MaxWait: 100 * time.Millisecond})
		for int64(len(parts[p])) < end {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return nil, err
			}
			parts[p] = append(parts[p], m)
		}
		r.Close()
		total += len(parts[p])
	}
	if total != s.events {
		return nil, fmt.Errorf("read %d records, want %d", total, s.events)
	}
	return parts, nil
}

// sinkOnly is the other bound: the project's sink applying the same events,
// decoded and folded beforehand, batched as the pipeline batches them
// (batch-size records across the partitions), one batch at a time.
func sinkOnly(ctx context.Context, s settings, rdb *redis.Client, topic, prefix string, pipe []consumer.BatchInfo) (float64, map[string]float64, error) {
	parts, err := readTopic(ctx, s, topic)
	if err != nil {
		return 0, nil, err
	}
	dec, err := profile.NewDecoder(decoderConfig())
	if err != nil {
		return 0, nil, err
	}
	groups, ok := pipelineBatches(parts, topic, pipe)
	if ok {
		logf("sink only: the pipeline's %d batches, record for record", len(groups))
	} else {
		// the pipeline's batches could not be read back: full batches of
		// chunks of each partition in turn
		groups = chunkBatches(parts, s.batchSize)
		logf("sink only: %d batches of partition chunks (the pipeline's could not be read back)", len(groups))
	}
	now := time.Now()
	batches := make([][]*profile.Update, 0, len(groups))
	scripts := 0
	for _, g := range groups {
		ups := map[string]*profile.Update{}
		var order []*profile.Update
		for _, m := range g {
			ev, err := dec.Decode(m.Value, m.Time, now)
			if err != nil || ev.Kind == profile.KindIgnored {
				continue
			}
			u, ok := ups[ev.ProfileID]
			if !ok {
				u = profile.NewUpdate(ev.ProfileID)
				ups[ev.ProfileID] = u
				order = append(order, u)
			}
			u.Add(ev, "bench:"+strconv.Itoa(m.Partition), m.Offset)
		}
		batches = append(batches, order)
		scripts += len(order)
	}
	logf("sink only: %.2f profile writes per record", float64(scripts)/float64(s.events))
	sk := sink.New(rdb, sink.Config{KeyPrefix: prefix, DedupeWindow: 24 * time.Hour}, nil)
	if err := sk.Load(ctx); err != nil {
		return 0, nil, err
	}
	_, redisPid := servicePids(ctx, s)
	r0, b0 := cpuSeconds(redisPid), cpuSeconds(os.Getpid())
	start := time.Now()
	for _, b := range batches {
		if err := sk.Apply(ctx, b); err != nil {
			return 0, nil, err
		}
	}
	d := time.Since(start)
	split := map[string]float64{"wall": d.Seconds(), "redis": cpuSeconds(redisPid) - r0, "bench": cpuSeconds(os.Getpid()) - b0}
	return float64(s.events) / d.Seconds(), split, nil
}

// pipelineBatches rebuilds the pipeline's batches from the offset ranges
// it reported. It reports false unless they hold every record of the topic
// exactly once, each partition's ranges following one another.
func pipelineBatches(parts [][]kafka.Message, topic string, batches []consumer.BatchInfo) ([][]kafka.Message, bool) {
	var out [][]kafka.Message
	total, want := 0, 0
	for _, p := range parts {
		want += len(p)
	}
	seen := make([]int64, len(parts)) // next offset expected per partition
	for _, b := range batches {
		var g []kafka.Message
		for _, r := range b.Ranges {
			p := r.Partition
			if r.Topic != topic || p < 0 || p >= len(parts) || r.First != seen[p] || r.Last < r.First {
				return nil, false
			}
			msgs := parts[p]
			lo := sort.Search(len(msgs), func(k int) bool { return msgs[k].Offset >= r.First })
			hi := sort.Search(len(msgs), func(k int) bool { return msgs[k].Offset > r.Last })
			g = append(g, msgs[lo:hi]...)
			total += hi - lo
			seen[p] = r.Last + 1
		}
		out = append(out, g)
	}
	return out, total == want
}

// chunkBatches makes full batches of chunks of each partition in turn.
func chunkBatches(parts [][]kafka.Message, size int) [][]kafka.Message {
	per := max(size/len(parts), 1)
	pos := make([]int, len(parts))
	var out [][]kafka.Message
	for {
		var g []kafka.Message
		left := true
		for len(g) < size && left {
			left = false
			for p := range parts {
				n := min(per, len(parts[p])-pos[p], size-len(g))
				g = append(g, parts[p][pos[p]:pos[p]+n]...)
				pos[p] += n
				left = left || pos[p] < len(parts[p])
			}
		}
		if len(g) == 0 {
			return out
		}
		out = append(out, g)
	}
}

// dropPrefix deletes every key that starts with prefix and returns how
// many it deleted.
func dropPrefix(ctx context.Context, rdb *redis.Client, prefix string) (int, error) {
	n := 0
	iter := rdb.Scan(ctx, 0, prefix+"*", 5000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 5000 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return n, err
			}
			n += len(keys)
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return n, err
	}
	if len(keys) > 0 {
		if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
			return n, err
		}
		n += len(keys)
	}
	return n, nil
}

func decoderConfig() profile.Config {
	c := profile.DefaultConfig()
	c.DefaultPhoneRegion = "IN"
	return c
}

// naive is what a typical first version does: one record at a time,
// FetchMessage, one script call, CommitMessages.
func naive(ctx context.Context, s settings, rdb *redis.Client, topic, group, prefix string) (float64, error) {
	dec, err := profile.NewDecoder(decoderConfig())
	if err != nil {
		return 0, err
	}
	sk := sink.New(rdb, sink.Config{KeyPrefix: prefix, DedupeWindow: 24 * time.Hour}, nil)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	start := time.Now()
	for n := 0; n < s.naiveEvents; n++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return 0, err
		}
		if ev, err := dec.Decode(m.Value, m.Time, time.Now()); err == nil && ev.Kind != profile.KindIgnored {
			u := profile.NewUpdate(ev.ProfileID)
			u.Add(ev, "naive:"+strconv.Itoa(m.Partition), m.Offset)
			if err := sk.Apply(ctx, []*profile.Update{u}); err != nil {
				return 0, err
			}
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			return 0, err
		}
	}
	return float64(s.naiveEvents) / time.Since(start).Seconds(), nil
}

type latencyResult struct {
	p50, p99 float64
	note     string
	window   string // what the machine did during the measured window
}

// latency produces at a steady rate into a fresh topic that a running
// profiled consumes. After a warm-up at the same rate (not measured: the
// new topic, profiled's first batches, the first requests of the broker's
// new code paths), one record in twenty is a probe: an app launch of a
// user of its own. A probe's latency runs from the moment the producer's
// write returned acknowledged to the moment Redis published the keyspace
// notification of the probe profile's first write — the moment its effect
// became readable (the script is atomic, so the notification comes from
// inside the write that makes the profile visible).
func latency(ctx context.Context, s settings, conn kafkaconn.Config, rdb *redis.Client, stamp string, values [][]byte) (latencyResult, error) {
	topic := "bench-lat-" + stamp
	prefix := "lat-" + stamp + ":"
	if err := conn.CreateTopic(ctx, topic, s.partitions); err != nil {
		return latencyResult{}, err
	}
	// The filler records, keyed before the clock starts: keying parses the
	// JSON, and the producer must not spend the cores it shares with what
	// is measured on that.
	fill := make([]kafka.Message, min(len(values), s.latencyRate*(s.latencyWarmup+s.latencySeconds)))
	for i := range fill {
		fill[i] = kafka.Message{Key: feed.Key(values[i]), Value: values[i]}
	}
	// warm the topic's metadata before timing
	w := feed.NewWriter(s.brokers, topic, nil)
	w.BatchTimeout = time.Millisecond
	defer w.Close()
	if err := writeRetry(ctx, w, []kafka.Message{{Value: []byte(`{"type":"screen"}`)}}); err != nil {
		return latencyResult{}, err
	}
	p, err := startProfiled(s, topic, "bench-lat-"+stamp, prefix, "")
	if err != nil {
		return latencyResult{}, err
	}
	defer p.stop()
	if err := waitReady(ctx, p); err != nil {
		return latencyResult{}, err
	}
	if err := rdb.ConfigSet(ctx, "notify-keyspace-events", "Kh").Err(); err != nil {
		return latencyResult{}, err
	}
	defer rdb.ConfigSet(context.Background(), "notify-keyspace-events", "")
	db := rdb.Options().DB
	sub := rdb.PSubscribe(ctx, fmt.Sprintf("__keyspace@%d__:%sprofile:{probe-*}", db, prefix))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return latencyResult{}, err
	}
	seen := make(chan seenAt, 1<<16)
	go func() {
		for msg := range sub.Channel(redis.WithChannelSize(1 << 16)) {
			seen <- seenAt{key: msg.Channel[strings.Index(msg.Channel, ":")+1:], at: time.Now()}
		}
	}()

	acked := map[string]time.Time{}
	readable := map[string]time.Time{}
	drain := func() {
		for {
			select {
			case s := <-seen:
				if _, ok := readable[s.key]; !ok {
					readable[s.key] = s.at
				}
			default:
				return
			}
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := s.latencyRate / 100
	sent, probes, fi := 0, 0, 0
	var begin time.Time
	var before usage
	start := time.Now()
	measureFrom := start.Add(time.Duration(s.latencyWarmup) * time.Second)
	end := measureFrom.Add(time.Duration(s.latencySeconds) * time.Second)
	for time.Now().Before(end) {
		<-tick.C
		measuring := !time.Now().Before(measureFrom)
		if measuring && begin.IsZero() {
			begin = time.Now()
			before = takeUsage(ctx, s, rdb, p)
		}
		msgs := make([]kafka.Message, 0, perTick)
		var ids []string
		for k := 0; k < perTick; k++ {
			if measuring && (sent+k)%20 == 0 {
				id := fmt.Sprintf("probe-%d", probes)
				probes++
				ids = append(ids, sink.Key(prefix, id))
				v := fmt.Sprintf(`{"type":"track","event":"Application Opened","userId":%q,"messageId":%q,"timestamp":%q}`,
					id, id, time.Now().UTC().Format(time.RFC3339Nano))
				msgs = append(msgs, kafka.Message{Key: []byte(id), Value: []byte(v)})
				continue
			}
			msgs = append(msgs, fill[fi%len(fill)])
			fi++
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return latencyResult{}, err
		}
		at := time.Now()
		for _, id := range ids {
			acked[id] = at
		}
		if measuring {
			sent += len(msgs)
		}
		drain()
	}
	window := time.Since(begin)
	after := takeUsage(ctx, s, rdb, p)
	rate := float64(sent) / window.Seconds()
	deadline := time.Now().Add(30 * time.Second)
	for len(readable) < len(acked) && time.Now().Before(deadline) {
		select {
		case s := <-seen:
			if _, ok := readable[s.key]; !ok {
				readable[s.key] = s.at
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	var ms []float64
	early := 0
	var trace *bufio.Writer
	if f, err := os.Create(os.Getenv("BENCH_LATENCY_TRACE")); err == nil {
		defer f.Close()
		trace = bufio.NewWriter(f)
		defer trace.Flush()
	}
	for id, a := range acked {
		rd, ok := readable[id]
		if !ok {
			return latencyResult{}, fmt.Errorf("probe %s never became readable", id)
		}
		d := rd.Sub(a)
		if d < 0 {
			early++
			d = 0
		}
		ms = append(ms, float64(d.Microseconds())/1000)
		if trace != nil {
			fmt.Fprintf(trace, "%s %d %.3f\n", id, a.UnixMicro(), float64(d.Microseconds())/1000)
		}
	}
	sort.Float64s(ms)
	pct := func(q float64) float64 { return ms[min(int(q*float64(len(ms))), len(ms)-1)] }
	note := fmt.Sprintf("%d probes over %s after a %ds warm-up, produced %.0f events/s", len(ms), window.Round(time.Second), s.latencyWarmup, rate)
	if early > 0 {
		note += fmt.Sprintf(", %d readable before the producer saw its ack (counted as 0)", early)
	}
	return latencyResult{p50: pct(0.50), p99: pct(0.99), note: note, window: after.since(before, window)}, nil
}

// usage is what the processes that share the machine had used at one
// moment, to tell where the cores went during the latency window.
type usage struct {
	profiled, redis, kafka, bench float64 // CPU seconds
	gc                            jvmGC
	batches, records              float64 // profiled_batch_size_records count and sum
}

// jvmGC is the broker's collector activity, as jstat reports it.
type jvmGC struct {
	ok                 bool
	young, concurrent  float64 // collections
	youngS, pauseTotal float64 // seconds
}

func takeUsage(ctx context.Context, s settings, rdb *redis.Client, p *proc) usage {
	kafkaPid, redisPid := servicePids(ctx, s)
	u := usage{profiled: cpuSeconds(p.cmd.Process.Pid), redis: cpuSeconds(redisPid), kafka: cpuSeconds(kafkaPid),
		bench: cpuSeconds(os.Getpid()), gc: jstat(kafkaPid)}
	u.batches, u.records = scrape(p.addr, "profiled_batch_size_records_count"), scrape(p.addr, "profiled_batch_size_records_sum")
	return u
}

func (a usage) since(b usage, d time.Duration) string {
	sec := d.Seconds()
	pct := func(x float64) string { return fmt.Sprintf("%.0f%%", 100*x/sec) }
	out := fmt.Sprintf("CPU (one core = 100%%, %d cores): profiled %s, Redis %s, Kafka broker %s, profilebench (producer and probe watcher) %s",
		runtime.NumCPU(), pct(a.profiled-b.profiled), pct(a.redis-b.redis), pct(a.kafka-b.kafka), pct(a.bench-b.bench))
	if n := a.batches - b.batches; n > 0 {
		out += fmt.Sprintf("; profiled wrote %.0f batches, %.0f records each on average", n, (a.records-b.records)/n)
	}
	if a.gc.ok && b.gc.ok {
		out += fmt.Sprintf("; broker GC: %.0f young collections (%.0f ms of pauses), %.0f concurrent cycles, %.0f ms of pauses in all",
			a.gc.young-b.gc.young, 1000*(a.gc.youngS-b.gc.youngS), a.gc.concurrent-b.gc.concurrent, 1000*(a.gc.pauseTotal-b.gc.pauseTotal))
	}
	return out
}

// jstat reads the broker JVM's collector counters (jstat -gcutil), when
// the JDK's jstat is at hand.
func jstat(pid int) jvmGC {
	if pid == 0 {
		return jvmGC{}
	}
	out, err := exec.Command("jstat", "-gcutil", strconv.Itoa(pid)).Output()
	if err != nil {
		return jvmGC{}
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return jvmGC{}
	}
	head, vals := strings.Fields(lines[0]), strings.Fields(lines[1])
	col := map[string]float64{}
	for i := range min(len(head), len(vals)) {
		col[head[i]], _ = strconv.ParseFloat(vals[i], 64)
	}
	return jvmGC{ok: true, young: col["YGC"], concurrent: col["CGC"], youngS: col["YGCT"], pauseTotal: col["GCT"]}
}

// scrape reads one unlabelled sample from profiled's /metrics.
func scrape(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

type seenAt struct {
	key string
	at  time.Time
}

type results struct {
	Events        int     `json:"events"`
	Pipeline      float64 `json:"pipeline_events_per_sec"`
	RawConsume    float64 `json:"raw_consume_events_per_sec"`
	SinkOnly      float64 `json:"sink_only_events_per_sec"`
	Naive         float64 `json:"naive_events_per_sec"`
	RatioVsLimit  float64 `json:"ratio_vs_limit"`
	RatioVsNaive  float64 `json:"ratio_vs_naive"`
	P50           float64 `json:"p50_latency_ms"`
	P99           float64 `json:"p99_latency_ms"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	CPUPerMillion float64 `json:"cpu_seconds_per_million"`

	split         map[string]float64
	sinkSplit     map[string]float64
	latencyNote   string
	latencyWindow string
	redisVersion  string
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func (r *results) write(s settings) error {
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| measure | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| pipeline (profiled, first offset to zero lag) | %.0f events/s | |\n", r.Pipeline)
	fmt.Fprintf(&b, "| raw consume (kafka-go, no decoding) | %.0f events/s | bound |\n", r.RawConsume)
	fmt.Fprintf(&b, "| sink only (Redis scripts, pre-decoded) | %.0f events/s | bound |\n", r.SinkOnly)
	fmt.Fprintf(&b, "| naive baseline (%d records) | %.0f events/s | |\n", s.naiveEvents, r.Naive)
	fmt.Fprintf(&b, "| ratio_vs_limit | %.2f | ≥ 0.7 %s |\n", r.RatioVsLimit, verdict(r.RatioVsLimit >= 0.7))
	fmt.Fprintf(&b, "| ratio_vs_naive | %.1f | ≥ 20 %s |\n", r.RatioVsNaive, verdict(r.RatioVsNaive >= 20))
	fmt.Fprintf(&b, "| latency p50 at %d events/s | %.1f ms | |\n", s.latencyRate, r.P50)
	fmt.Fprintf(&b, "| latency p99 at %d events/s | %.1f ms | ≤ 50 %s |\n", s.latencyRate, r.P99, verdict(r.P99 <= 50))
	fmt.Fprintf(&b, "| peak RSS of profiled | %.1f MiB | ≤ 150 %s |\n", r.PeakRSSMiB, verdict(r.PeakRSSMiB <= 150))
	fmt.Fprintf(&b, "| CPU of profiled per million events | %.1f s | |\n", r.CPUPerMillion)
	table := b.String()
	fmt.Println(table)

	var md strings.Builder
	fmt.Fprintf(&md, "# Benchmarks\n\nWritten by `make bench` (`cmd/profilebench`) on %s. Every figure below comes from one run on one machine;\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	md.WriteString("the machines are shared, so read the ratios (measured side by side) before the absolute numbers.\n\n")
	fmt.Fprintf(&md, "- Machine: %d cores, %s\n- Go %s, Apache Kafka %s (one KRaft node), Redis %s\n", runtime.NumCPU(), cpuModel(), strings.TrimPrefix(runtime.Version(), "go"), s.kafkaVersion, r.redisVersion)
	fmt.Fprintf(&md, "- Workload: %d records over %d users (Zipf 1.1), 70%% launches, 25%% visits, 5%% identify, 1%% malformed, 2%% producer duplicates, times shuffled ±10 min, %d partitions keyed by userId, else anonymousId; identity journeys: a third of the users start anonymous and sign up at a fixed point of the stream (5%% of their later events still anonymous, arriving after the link), the others carry their own device's anonymous id (one link each)\n", s.events, s.users, s.partitions)
	fmt.Fprintf(&md, "- profiled settings: batch size %d, batch time 1ms (default), dedupe window 24h\n\n", s.batchSize)
	md.WriteString(table)
	fmt.Fprintf(&md, "\nLatency: %s. Measured from the return of the producer's acknowledged write to the Redis keyspace notification of the probe profile's write.\n\nDuring the latency window: %s.\n", r.latencyNote, r.latencyWindow)
	if r.split != nil {
		fmt.Fprintf(&md, "\nCPU during the pipeline run (%.1f s wall, 2 cores = %.1f core-seconds available): profiled %.1f s, Redis %.1f s, Kafka broker %.1f s.\n",
			r.split["wall"], 2*r.split["wall"], r.split["profiled"], r.split["redis"], r.split["kafka"])
	}
	if r.sinkSplit != nil {
		fmt.Fprintf(&md, "\nCPU during the sink-only run (%.1f s wall): Redis %.1f s, profilebench (the sink's client) %.1f s.\n",
			r.sinkSplit["wall"], r.sinkSplit["redis"], r.sinkSplit["bench"])
	}
	if notes, err := os.ReadFile(filepath.Join("cmd", "profilebench", "NOTES.md")); err == nil {
		md.WriteString("\n")
		md.Write(notes)
	}
	if cl, err := os.ReadFile(filepath.Join("cmd", "profilebench", "CLUSTER.md")); err == nil {
		md.WriteString("\n") // make bench-cluster's last table
		md.Write(cl)
	}
	if err := os.WriteFile(s.md, []byte(md.String()), 0o644); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(s.out, append(j, '\n'), 0o644)
}
