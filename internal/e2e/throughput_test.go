package e2e_test

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestThroughputRough measures a first end-to-end rate: a filled
// 6-partition topic, one profiled process, time to zero lag. It is a
// measurement, not a check, so it runs only when PROFILED_TEST_THROUGHPUT
// names the number of events (make throughput sets it); the benchmark
// harness is the place for careful numbers.
func TestThroughputRough(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PROFILED_TEST_THROUGHPUT"))
	if n <= 0 {
		t.Skip("set PROFILED_TEST_THROUGHPUT=<events> to measure")
	}
	e := setup(t)
	values, want := workload(9, n, n/2)
	topic := e.topic(t, 6)
	o := e.opts(t, topic)
	e.produce(t, topic, values)
	start := time.Now()
	p := e.start(t, o)
	e.waitCaughtUp(t, o.group, topic, 20*time.Minute)
	d := time.Since(start)
	if f := os.Getenv("PROFILED_TEST_LOG_FILE"); f != "" {
		_ = os.WriteFile(f, []byte(p.out.String()), 0o644)
	}
	t.Logf("%d events in %s: %.0f events/s (including process start and group join)", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	checkCounts(t, e.profiles(t, o.prefix), want)
}
