package consumer

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestBackoffPolicy: the ceiling doubles from min up to max and stays
// there; the delay is full jitter: anywhere in [0, ceiling], both ends
// included. The injected rand returns its lowest or highest value.
func TestBackoffPolicy(t *testing.T) {
	lowest := func(int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	ms := time.Millisecond
	for _, tc := range []struct {
		name     string
		min, max time.Duration
		attempt  int
		ceiling  time.Duration
	}{
		{"first attempt: min", 100 * ms, 5 * time.Second, 0, 100 * ms},
		{"doubles", 100 * ms, 5 * time.Second, 1, 200 * ms},
		{"doubles again", 100 * ms, 5 * time.Second, 5, 3200 * ms},
		{"capped at max", 100 * ms, 5 * time.Second, 6, 5 * time.Second},
		{"stays capped", 100 * ms, 5 * time.Second, 1000, 5 * time.Second},
		{"no overflow at huge attempts", time.Hour, 24 * time.Hour, 62, 24 * time.Hour},
		{"min equal to max", time.Second, time.Second, 3, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Backoff{Min: tc.min, Max: tc.max}
			if got := b.ceiling(tc.attempt); got != tc.ceiling {
				t.Fatalf("ceiling(%d) = %s, want %s", tc.attempt, got, tc.ceiling)
			}
			b.rand = lowest
			if got := b.Delay(tc.attempt); got != 0 {
				t.Errorf("lowest delay %s, want 0 (full jitter)", got)
			}
			b.rand = highest
			if got := b.Delay(tc.attempt); got != tc.ceiling {
				t.Errorf("highest delay %s, want the ceiling %s", got, tc.ceiling)
			}
		})
	}
}

// TestBackoffFullJitterSpread: with the real random source, delays cover
// the lower half of the range too (equal jitter, which the policy used to
// compute, never goes below half the ceiling) and never exceed the ceiling.
func TestBackoffFullJitterSpread(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	low := 0
	for i := 0; i < 1000; i++ {
		d := b.Delay(3)
		if d < 0 || d > 800*time.Millisecond {
			t.Fatalf("delay %s outside [0, 800ms]", d)
		}
		if d < 400*time.Millisecond {
			low++
		}
	}
	if low < 300 || low > 700 {
		t.Errorf("%d of 1000 delays below half the ceiling, want about half", low)
	}
}

// TestBackoffWait: Wait sleeps the attempt's delay and reports true; it
// reports false at once when the context has ended, and when it ends
// during the wait.
func TestBackoffWait(t *testing.T) {
	b := Backoff{Min: time.Millisecond, Max: time.Millisecond}
	if !b.Wait(context.Background(), 0) {
		t.Fatal("Wait with a live context: false, want true")
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if b.Wait(ended, 0) {
		t.Fatal("Wait with an ended context: true, want false")
	}
	long := Backoff{Min: time.Hour, Max: time.Hour, rand: func(n int64) int64 { return n - 1 }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if long.Wait(ctx, 0) {
		t.Fatal("Wait of an hour with a context ending in 10ms: true, want false")
	}
}

// TestRetrierLogsFirstAndEveryTwentieth: a loop that keeps failing logs
// its first failure and every 20th, and stops when its context ends.
func TestRetrierLogsFirstAndEveryTwentieth(t *testing.T) {
	var buf bytes.Buffer
	touched := 0
	r := &retrier{policy: Backoff{Min: time.Nanosecond, Max: time.Nanosecond}, log: zerolog.New(&buf),
		what: "store write", touch: func() { touched++ }}
	for i := 0; i < 45; i++ {
		if !r.wait(context.Background(), errors.New("down")) {
			t.Fatal("wait returned false with a live context")
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines for 45 failures, want 3 (attempts 1, 21, 41):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{`"attempt":1`, `"attempt":21`, `"attempt":41`} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "store write failed") {
			t.Errorf("line %d = %s, want %s", i, lines[i], want)
		}
	}
	if touched != 45 {
		t.Errorf("touched %d times, want 45", touched)
	}
	r.reset()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r.wait(ctx, errors.New("down")) {
		t.Error("wait returned true after its context ended")
	}
}
