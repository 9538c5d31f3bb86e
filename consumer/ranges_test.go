package consumer

import (
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestBatchRanges: the debug line of a written batch names, per partition
// in order of first appearance, the first and last offset it held; the
// benchmark rebuilds the pipeline's batches from it.
func TestBatchRanges(t *testing.T) {
	b := newBatch(8)
	for _, m := range []kafka.Message{
		{Topic: "events", Partition: 2, Offset: 10}, {Topic: "events", Partition: 0, Offset: 0},
		{Topic: "events", Partition: 2, Offset: 11}, {Topic: "other", Partition: 2, Offset: 7},
		{Topic: "events", Partition: 2, Offset: 12}, {Topic: "events", Partition: 0, Offset: 1},
	} {
		b.recs = append(b.recs, decoded{msg: m})
	}
	if got, want := b.ranges(), "events/2:10-12 events/0:0-1 other/2:7-7"; got != want {
		t.Fatalf("ranges %q, want %q", got, want)
	}
	if got := newBatch(1).ranges(); got != "" {
		t.Fatalf("empty batch: ranges %q", got)
	}
}
