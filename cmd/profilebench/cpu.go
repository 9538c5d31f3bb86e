package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

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
