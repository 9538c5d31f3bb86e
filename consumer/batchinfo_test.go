package consumer

import (
	"reflect"
	"testing"

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
		b.recs = append(b.recs, decoded{msg: m})
	}
	b.dead = []int{3}
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
