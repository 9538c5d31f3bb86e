package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/internal/feed"
)

// commitBound is the contract's bound: offsets are committed within 5 s of
// the records' writes, also when the stream has gone quiet.
const commitBound = 5 * time.Second

// TestCommitWithinBoundWhenStreamGoesQuiet sends short bursts — launches
// and one record to dead-letter — and after each burst sends nothing more.
// Each burst must be committed to the end of its partitions within the
// bound of the moment its last effect is readable in the store: a committer
// that only committed when the next records came would leave a quiet
// stream's last records uncommitted for as long as the quiet lasts.
func TestCommitWithinBoundWhenStreamGoesQuiet(t *testing.T) {
	f := newFixture(t, 2)
	brokers, conn, store := f.brokers, f.conn, f.store
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// the default CommitInterval: the bound must hold as shipped
	c := f.consumer(t, ctx, consumer.Config{})
	stop := run(t, ctx, cancel, c)
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
		until(t, 20*time.Second, user+" applied", func() bool { return store.field(user, "app_launches") == "5" })
		applied := time.Now()
		// the stream is quiet now: the commit must come by itself
		until(t, commitBound, fmt.Sprintf("round %d committed within %s of its write", round, commitBound), func() bool {
			offs, err := conn.GroupOffsets(ctx, "g", "events")
			return err == nil && caughtUp(offs)
		})
		t.Logf("round %d: committed %s after its last write was readable", round, time.Since(applied).Round(time.Millisecond))
	}
	stop()
}
