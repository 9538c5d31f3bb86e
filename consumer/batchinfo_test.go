package consumer

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/profile"
)

// TestBatchInfo: a written batch is described, per partition in order of
// first appearance, by the first and last offset it held; the benchmark
// rebuilds the pipeline's batches from it.
func TestBatchInfo(t *testing.T) {
	b := newBatch(8)
	for _, m := range []kafka.Message{
		{Topic: "events", Partition: 2, Offset: 10}, {Topic: "events", Partition: 0, Offset: 0},
		{Topic: "events", Partition: 2, Offset: 11}, {Topic: "other", Partition: 2, Offset: 7},
		{Topic: "events", Partition: 2, Offset: 12}, {Topic: "events", Partition: 0, Offset: 1},
	} {
		b.recs = append(b.recs, rec{msg: position{m.Topic, m.Partition, m.Offset, m.HighWaterMark}})
	}
	b.recs[3].dead = true
	b.dead = []decoded{{msg: kafka.Message{Topic: "other", Partition: 2, Offset: 7}}}
	b.order = []*profile.Update{profile.NewUpdate("a"), profile.NewUpdate("b")}
	want := BatchInfo{Ranges: []OffsetRange{
		{"events", 2, 10, 12}, {"events", 0, 0, 1}, {"other", 2, 7, 7},
	}, Records: 6, Profiles: 2, Dead: 1}
	if got := b.info(); !reflect.DeepEqual(got, want) {
		t.Fatalf("info %+v, want %+v", got, want)
	}
	if got := newBatch(1).info(); len(got.Ranges) != 0 || got.Records != 0 {
		t.Fatalf("empty batch: %+v", got)
	}
}

// TestFoldBoundsOneProfilesShare: a profile with more launches and visits
// in one batch than one store call should carry gets several updates, in
// offset order, none above the bound, together holding every record once.
func TestFoldBoundsOneProfilesShare(t *testing.T) {
	b := newBatch(2600)
	ids := &topicIDs{ids: map[string]string{"events": "id"}}
	dec, err := profile.NewDecoder(profile.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2500 {
		b.add(dec, ids, kafka.Message{Topic: "events", Offset: int64(i), Time: time.Now(),
			Value: []byte(fmt.Sprintf(`{"type":"page","userId":"bot","messageId":"m%d"}`, i))})
	}
	b.add(dec, ids, kafka.Message{Topic: "events", Offset: 2500, Time: time.Now(), Value: []byte(`{"type":"page","userId":"innocent"}`)})
	var sizes []int
	next := int64(0)
	for _, u := range b.order {
		if u.ProfileID != "bot" {
			continue
		}
		sizes = append(sizes, len(u.Counts))
		for _, c := range u.Counts {
			if c.Offset != next {
				t.Fatalf("offset %d, want %d: the updates are not in offset order", c.Offset, next)
			}
			next++
		}
	}
	if !reflect.DeepEqual(sizes, []int{1000, 1000, 500}) || len(b.order) != 4 {
		t.Fatalf("bot's updates hold %v counts; %d updates in all", sizes, len(b.order))
	}
}
