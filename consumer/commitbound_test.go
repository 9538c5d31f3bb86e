package consumer_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/feed"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// commitBound is the contract's bound: offsets are committed within 5 s of
// the records' writes, also when the stream has gone quiet.
const commitBound = 5 * time.Second

// TestCommitWithinBoundWhenStreamGoesQuiet sends short bursts — launches
// and one record to dead-letter — and after each burst sends nothing more.
// Each burst must be committed to the end of its partitions within the
// bound of the moment its last effect is readable in Redis: a committer
// that only committed when the next records came would leave a quiet
// stream's last records uncommitted for as long as the quiet lasts.
func TestCommitWithinBoundWhenStreamGoesQuiet(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events"), kfake.SeedTopics(1, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	brokers := cl.ListenAddrs()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	dec, err := profile.NewDecoder(profile.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	conn := consumer.Conn{Brokers: brokers}
	// the default CommitInterval: the bound must hold as shipped
	c, err := consumer.New(consumer.Config{Conn: conn, Topics: []string{"events"}, Group: "g", DLQTopic: "dlq"},
		zerolog.New(io.Discard), prometheus.NewRegistry(), dec, sink.New(rdb, sink.Config{DedupeWindow: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	until(t, 20*time.Second, "ready", func() bool { return c.Ready(ctx) == nil })

	w := feed.NewWriter(brokers, "events", nil)
	defer w.Close()
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)
	for round := 0; round < 3; round++ {
		user := fmt.Sprintf("quiet-%d", round)
		msgs := []kafka.Message{{Key: []byte("bad"), Value: []byte(`{"type":"page"`)}}
		for i := 0; i < 5; i++ {
			msgs = append(msgs, kafka.Message{Key: []byte(user), Value: []byte(fmt.Sprintf(
				`{"type":"track","event":"App Launched","userId":%q,"messageId":"%s-%d","timestamp":%q}`, user, user, i, ts))})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		until(t, 20*time.Second, user+" applied", func() bool {
			n, err := rdb.HGet(ctx, sink.Key("", user), "app_launches").Result()
			return err == nil && n == "5"
		})
		applied := time.Now()
		// the stream is quiet now: the commit must come by itself
		until(t, commitBound, fmt.Sprintf("round %d committed within %s of its write", round, commitBound), func() bool {
			offs, err := conn.GroupOffsets(ctx, "g", "events")
			return err == nil && consumer.CaughtUp(offs)
		})
		t.Logf("round %d: committed %s after its last write was readable", round, time.Since(applied).Round(time.Millisecond))
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
