package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/internal/feed"
)

// TestOversizedDeadLettersInARow produces 40 records in a row that are each
// too large for profiled (33 KB) yet fit the dead-letter topic; together
// they are more than one produce request may carry (the broker's
// message.max.bytes, 1 MB). Every one must reach the dead-letter topic and
// the partition must be committed to its end: a request refused as too
// large does not make its records too large for good. (The fault suite
// found this: such a burst stopped the partition, and every partition
// whose dead letters shared the request.)
func TestOversizedDeadLettersInARow(t *testing.T) {
	f := newFixture(t, 1)
	brokers, conn, store, reg := f.brokers, f.conn, f.store, f.reg

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := feed.NewWriter(brokers, "events", nil)
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)
	const big = 40
	for i := 0; i <= big; i++ {
		v := fmt.Sprintf(`{"type":"page","userId":"after","timestamp":%q}`, ts)
		if i < big {
			v = fmt.Sprintf(`{"type":"page","userId":"big-%d","timestamp":%q,"pad":%q}`, i, ts, strings.Repeat("x", 33<<10))
		}
		// one request each: together they are too large for the broker too
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("same"), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	c := f.consumer(t, ctx, consumer.Config{BatchTime: 200 * time.Millisecond,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	stop := run(t, ctx, cancel, c)

	deadline := time.Now().Add(30 * time.Second)
	for {
		offs, err := conn.GroupOffsets(ctx, "g", "events")
		if err == nil && caughtUp(offs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every record committed within 30s: %v (stopped partitions: %v)", offs, gauge(t, reg, "profiled_partitions_stopped"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := gauge(t, reg, "profiled_partitions_stopped"); n != 0 {
		t.Errorf("%v partitions stopped", n)
	}

	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]bool{}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	for len(seen) < big && rctx.Err() == nil {
		rd.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == consumer.HeaderSourceOffset {
					seen[string(h.Value)] = true
				}
			}
		})
	}
	if len(seen) != big {
		t.Fatalf("%d of %d oversized records in the dead-letter topic", len(seen), big)
	}
	if n := store.field("after", "web_visits"); n != "1" {
		t.Errorf("the record after the burst: web_visits %q, want 1", n)
	}
	stop()
}

// gauge reads one unlabelled metric from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}
