package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/internal/feed"
)

// TestNothingCommittedWhileStoreFails runs the consumer against the
// in-process broker and the fake store (no services needed, so it runs
// under -short too): while every Apply fails, the consumer is not ready
// and commits nothing; when the store works again, every record is applied
// once and committed. The real-services version is e2e.TestRedisOutage.
func TestNothingCommittedWhileStoreFails(t *testing.T) {
	f := newFixture(t, 3)
	conn, store := f.conn, f.store
	f.produceLaunches(t, 300, 30)

	ctx, cancel := context.WithCancel(context.Background())
	c := f.consumer(t, ctx, consumer.Config{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	store.setFail(errors.New("LOADING Redis is loading the dataset in memory"))
	stop := run(t, ctx, cancel, c)

	until(t, 20*time.Second, "not ready because the store fails", func() bool {
		err := c.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "store writes are failing")
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

	store.setFail(nil)
	until(t, 20*time.Second, "every record committed", func() bool {
		offs, err := conn.GroupOffsets(ctx, "g", "events")
		return err == nil && caughtUp(offs)
	})
	until(t, 5*time.Second, "ready", func() bool { return c.Ready(ctx) == nil })
	total := 0
	for i := 0; i < 30; i++ {
		n, err := strconv.Atoi(store.field(fmt.Sprintf("u%d", i), "app_launches"))
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 300 {
		t.Fatalf("%d launches counted, want 300", total)
	}
	stop()
}

// TestOnBatchReportsEveryRecordOnce: the batches OnBatch reports cover
// every consumed record once, per partition in offset order; the
// benchmark rebuilds the pipeline's batches from them.
func TestOnBatchReportsEveryRecordOnce(t *testing.T) {
	f := newFixture(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := feed.NewWriter(f.brokers, "events", nil)
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)
	var lines []string
	for i := 0; i < 200; i++ {
		if i%50 == 7 {
			lines = append(lines, `{"type":"page"`) // dead-lettered: reported too
			continue
		}
		lines = append(lines, fmt.Sprintf(`{"type":"page","userId":"u%d","timestamp":%q}`, i%20, ts))
	}
	if _, err := feed.Lines(ctx, w, strings.NewReader(strings.Join(lines, "\n"))); err != nil {
		t.Fatal(err)
	}
	w.Close()

	var mu sync.Mutex
	var batches []consumer.BatchInfo
	c := f.consumer(t, ctx, consumer.Config{BatchSize: 16, OnBatch: func(b consumer.BatchInfo) {
		mu.Lock()
		batches = append(batches, b)
		mu.Unlock()
	}})
	stop := run(t, ctx, cancel, c)
	until(t, 20*time.Second, "every record committed", func() bool {
		offs, err := f.conn.GroupOffsets(ctx, "g", "events")
		return err == nil && caughtUp(offs)
	})
	stop()

	next := map[int]int64{}
	records, dead := 0, 0
	for _, b := range batches {
		n := 0
		for _, r := range b.Ranges {
			if r.Topic != "events" || r.First != next[r.Partition] || r.Last < r.First {
				t.Fatalf("range %+v does not follow offset %d", r, next[r.Partition])
			}
			next[r.Partition] = r.Last + 1
			n += int(r.Last - r.First + 1)
		}
		if n != b.Records || b.Records > 16 {
			t.Errorf("batch %+v: ranges hold %d records", b, n)
		}
		records += b.Records
		dead += b.Dead
	}
	if records != 200 || dead != 4 {
		t.Errorf("reported %d records, %d dead; want 200, 4", records, dead)
	}
}
