package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
)

// benchPrefix holds the benchmark's profiles; benchFilled records how
// many, so a second run skips the fill.
const (
	benchPrefix = "bench-export:"
	benchFilled = benchPrefix + "filled"
)

// BenchmarkExportParquet fills the Redis of PROFILED_TEST_REDIS_URL with
// PROFILED_EXPORT_PROFILES profiles (default 1,000,000) as profiled lays
// them out (the hash of about 20 fields and 2 custom traits, a bookkeeping
// hash and a dedupe set beside it, a links hash for a third of the users),
// then runs the profilectl binary to export them all to Parquet, and
// reports its rate and its peak resident memory (getrusage of the child).
// Run it with `make bench-export`.
func BenchmarkExportParquet(b *testing.B) {
	c := testenv.RealRedis(b)
	url := os.Getenv(testenv.EnvRedisURL)
	n := 1_000_000
	if s := os.Getenv("PROFILED_EXPORT_PROFILES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	fill(b, c, n)
	bin := testenv.Build(b, "cmd/profilectl")
	out := filepath.Join(b.TempDir(), "profiles.parquet")
	b.ResetTimer()
	for b.Loop() {
		redisCPU := serverCPU(b, c)
		start := time.Now()
		p := testenv.Start(b, append(testenv.Environ("PROFILED_"), "PROFILED_REDIS_URL="+url),
			bin, "export", "--format", "parquet", "--out", out, "--prefix", benchPrefix)
		code := p.Wait(b, 30*time.Minute)
		d := time.Since(start)
		msg := p.Out.String()
		if code != 0 {
			b.Fatalf("%s exited %d\n%s", bin, code, msg)
		}
		ru := p.Rusage()
		redisCPU = serverCPU(b, c) - redisCPU
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		fi, _ := os.Stat(out)
		b.ReportMetric(float64(n)/d.Seconds(), "profiles/s")
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB") // Linux: KiB
		b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
		b.ReportMetric(cpu*1e6/float64(n), "profilectl-CPU-µs/profile")
		b.ReportMetric(redisCPU*1e6/float64(n), "redis-CPU-µs/profile")
		load, _ := os.ReadFile("/proc/loadavg")
		b.Logf("%d profiles in %.2f s: %.0f profiles/s, peak RSS %.1f MiB, profilectl CPU %.2f s, redis-server CPU %.2f s, file %.1f MiB, load average %s; %s",
			n, d.Seconds(), float64(n)/d.Seconds(), float64(ru.Maxrss)/1024, cpu, redisCPU, float64(fi.Size())/(1<<20), load, msg)
	}
}

// serverCPU is the CPU time the Redis server has used (INFO cpu, user
// plus system), in seconds: the export's other half of the work.
func serverCPU(b *testing.B, c *redis.Client) float64 {
	info, err := c.InfoMap(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	user, _ := strconv.ParseFloat(info["CPU"]["used_cpu_user"], 64)
	sys, _ := strconv.ParseFloat(info["CPU"]["used_cpu_sys"], 64)
	return user + sys
}

// fill writes n profiles under benchPrefix by pipelined HSETs, unless a
// previous run left exactly n.
func fill(b *testing.B, c *redis.Client, n int) {
	ctx := context.Background()
	if have, _ := c.Get(ctx, benchFilled).Int(); have == n {
		return
	}
	var cursor uint64
	for { // remove a fill of another size
		keys, next, err := c.Scan(ctx, cursor, benchPrefix+"*", 10000).Result()
		if err != nil {
			b.Fatal(err)
		}
		if len(keys) > 0 {
			c.Unlink(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	start := time.Now()
	cities := []string{"Pune", "Bengaluru", "Mumbai", "São Paulo", "Berlin"}
	types := []string{"Gold", "Silver", "Bronze"}
	const chunk = 2000
	for lo := 0; lo < n; lo += chunk {
		pipe := c.Pipeline()
		for i := lo; i < min(lo+chunk, n); i++ {
			id := fmt.Sprintf("u-%07d", i)
			if i%4 == 3 {
				id = fmt.Sprintf("anon:%08x-6f1e-4c2b-9d3a-%012x", i, i)
			}
			key := benchPrefix + "profile:{" + id + "}"
			first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
			pipe.HSet(ctx, key,
				"customer_id", id, "anonymous_id", fmt.Sprintf("%08x-6f1e-4c2b-9d3a-%012x", i, i),
				"email", fmt.Sprintf("person.%d@example.com", i), "phone", fmt.Sprintf("+9198%08d", i),
				"birthday", fmt.Sprintf("19%02d-%02d-%02d", 50+i%50, 1+i%12, 1+i%28),
				"customer_type", types[i%3], "city", cities[i%5], "country", "IN",
				"latitude", "18.5204", "longitude", "73.8567", "timezone", "Asia/Kolkata",
				"first_seen", first.Format("2006-01-02T15:04:05.000Z"), "first_seen_channel", "web",
				"last_seen", first.Add(time.Hour).Format("2006-01-02T15:04:05.000Z"), "last_seen_channel", "app",
				"app_launches", strconv.Itoa(i%40), "web_visits", strconv.Itoa(i%17),
				"created_at", first.Format("2006-01-02T15:04:05.000Z"), "updated_at", first.Add(time.Hour).Format("2006-01-02T15:04:05.000Z"),
				"trait.plan", "annual", "trait.referrer", "newsletter")
			pipe.HSet(ctx, key+":m", "t:email", "1764000000000", "fs", "1764000000000", "ls", "1764003600000", "o:1:0", "123")
			pipe.ZAdd(ctx, key+":d", redis.Z{Score: 1764000000000, Member: fmt.Sprintf("m-%d", i)})
			if i%12 == 0 {
				pipe.HSet(ctx, key+":links", fmt.Sprintf("a-%d", i), "f")
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	c.Set(ctx, benchFilled, n, 0)
	b.Logf("filled %d profiles in %.1f s", n, time.Since(start).Seconds())
}
