package consumer

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/profile"
)

// TestTombstones: a null and an empty value are both tombstones, skipped
// before any check (never dead-lettered as invalid_json).
func TestTombstones(t *testing.T) {
	dec, err := profile.NewDecoder(profile.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"null", nil},
		{"empty", []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBatch()
			b.add(dec, &topicIDs{ids: map[string]string{}}, kafka.Message{Topic: "events", Value: tc.value, Time: time.Now()})
			if len(b.dead) != 0 {
				t.Fatalf("dead-lettered: %v", b.dead[0].rej)
			}
			if r := b.recs.at(0); r.kind != profile.KindIgnored || r.skip != profile.SkipTombstone {
				t.Fatalf("kind %v skip %q, want a tombstone", r.kind, r.skip)
			}
		})
	}
}
