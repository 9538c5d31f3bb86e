package consumer_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/feed"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// TestNothingCommittedWhileRedisFails runs the consumer against the
// in-process broker and Redis (no services needed, so it runs under
// -short too): while every Redis command fails, the consumer is not ready
// and commits nothing; when Redis answers again, every record is applied
// once and committed. The real-services version is e2e.TestRedisOutage.
func TestNothingCommittedWhileRedisFails(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events"), kfake.SeedTopics(1, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	brokers := cl.ListenAddrs()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	defer rdb.Close()

	var lines []string
	for i := 0; i < 300; i++ {
		lines = append(lines, fmt.Sprintf(`{"type":"track","event":"App Launched","userId":"u%d","messageId":"m%d","timestamp":"%s"}`,
			i%30, i, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)))
	}
	w := feed.NewWriter(brokers, "events", nil)
	if _, err := feed.Lines(context.Background(), w, strings.NewReader(strings.Join(lines, "\n"))); err != nil {
		t.Fatal(err)
	}
	w.Close()

	dec, err := profile.NewDecoder(profile.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	conn := consumer.Conn{Brokers: brokers}
	c, err := consumer.New(consumer.Config{Conn: conn, Topics: []string{"events"}, Group: "g", DLQTopic: "dlq",
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond},
		zerolog.New(io.Discard), prometheus.NewRegistry(), dec, sink.New(rdb, sink.Config{DedupeWindow: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	mr.SetError("LOADING Redis is loading the dataset in memory")
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	until(t, 20*time.Second, "not ready because of Redis", func() bool {
		err := c.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "redis")
	})
	// the invariant, checked for a while: nothing committed
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		offs, err := conn.GroupOffsets(ctx, "g", "events")
		if err != nil {
			continue
		}
		for p, po := range offs {
			if po.Committed > 0 {
				t.Fatalf("partition %d committed %d while Redis failed", p, po.Committed)
			}
		}
	}

	mr.SetError("")
	until(t, 20*time.Second, "every record committed", func() bool {
		offs, err := conn.GroupOffsets(ctx, "g", "events")
		return err == nil && consumer.CaughtUp(offs)
	})
	until(t, 5*time.Second, "ready", func() bool { return c.Ready(ctx) == nil })
	total := 0
	for i := 0; i < 30; i++ {
		n, err := rdb.HGet(ctx, sink.Key("", fmt.Sprintf("u%d", i)), "app_launches").Int()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 300 {
		t.Fatalf("%d launches counted, want 300", total)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
