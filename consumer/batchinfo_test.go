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
	b := newBatch()
	for _, m := range []kafka.Message{
		{Topic: "events", Partition: 2, Offset: 10}, {Topic: "events", Partition: 0, Offset: 0},
		{Topic: "events", Partition: 2, Offset: 11}, {Topic: "other", Partition: 2, Offset: 7},
		{Topic: "events", Partition: 2, Offset: 12}, {Topic: "events", Partition: 0, Offset: 1},
	} {
		b.recs.add(rec{msg: position{m.Topic, m.Partition, m.Offset, m.HighWaterMark}})
	}
	b.recs.at(3).dead = true
	b.dead = []decoded{{msg: kafka.Message{Topic: "other", Partition: 2, Offset: 7}}}
	b.order = []*profile.Update{profile.NewUpdate("a"), profile.NewUpdate("b")}
	want := BatchInfo{Ranges: []OffsetRange{
		{"events", 2, 10, 12}, {"events", 0, 0, 1}, {"other", 2, 7, 7},
	}, Records: 6, Profiles: 2, Dead: 1}
	if got := b.info(); !reflect.DeepEqual(got, want) {
		t.Fatalf("info %+v, want %+v", got, want)
	}
	if got := newBatch().info(); len(got.Ranges) != 0 || got.Records != 0 {
		t.Fatalf("empty batch: %+v", got)
	}
}

// TestFoldBoundsOneProfilesShare: a profile with more launches and visits
// in one batch than one store call should carry gets several updates, in
// offset order, none above the bound, together holding every record once.
func TestFoldBoundsOneProfilesShare(t *testing.T) {
	b := newBatch()
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

// TestRecList: records come back in the order added, across chunks, and
// after another list's records were taken by their chunks.
func TestRecList(t *testing.T) {
	var a, b recList
	for i := range 5000 {
		a.add(rec{msg: position{Offset: int64(i)}})
	}
	for i := range 300 {
		b.add(rec{msg: position{Offset: int64(5000 + i)}})
	}
	a.addAll(b)
	for i := range 3000 {
		a.add(rec{msg: position{Offset: int64(5300 + i)}})
	}
	if a.len() != 8300 {
		t.Fatalf("%d records, want 8300", a.len())
	}
	next := int64(0)
	for r := range a.all() {
		if r.msg.Offset != next {
			t.Fatalf("record %d has offset %d", next, r.msg.Offset)
		}
		next++
	}
	if next != 8300 {
		t.Fatalf("all yielded %d records", next)
	}
	for _, i := range []int{0, 63, 64, 4999, 5000, 5299, 5300, 8299} {
		if got := a.at(i).msg.Offset; got != int64(i) {
			t.Errorf("at(%d) = offset %d", i, got)
		}
	}
	for _, c := range a.chunks {
		if cap(c) > recChunk {
			t.Errorf("a chunk of %d records", cap(c))
		}
	}
}
