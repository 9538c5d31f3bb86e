package faults_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/profiled/profiled/internal/testenv"
)

// TestRecordAtLimitIsAtTheBrokersLimit: a topic created without settings on
// a broker deploy/kafka.sh starts (as the suite's input topics are) has
// max.message.bytes brokerMaxMessageBytes; the stream's record at the limit
// is accepted through produce, and the same record one byte longer is
// refused. So the records the fault suite sends "at the limit" are exactly
// there, not a little below. Needs the real broker of make test.
func TestRecordAtLimitIsAtTheBrokersLimit(t *testing.T) {
	svc := testenv.Real(t)
	topic := svc.Topic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newAdmin(svc.Brokers[0])
	if n, err := a.maxMessageBytes(ctx, topic); err != nil || n != brokerMaxMessageBytes {
		t.Fatalf("max.message.bytes of a topic created without settings: %d, %v; the suite assumes %d", n, err, brokerMaxMessageBytes)
	}
	var limit []*rec
	for _, r := range generate(3, 2000, time.Now()).recs {
		if r.atLimit {
			limit = append(limit, r)
		}
	}
	if len(limit) != 2 {
		t.Fatalf("%d records at the limit, want 2", len(limit))
	}
	if err := produce(ctx, svc.Brokers[0], topic, limit); err != nil {
		t.Fatalf("records at the limit refused: %v", err)
	}
	for _, r := range limit {
		if r.offset < 0 || r.offset > 1 {
			t.Errorf("record seq %d at offset %d", r.seq, r.offset)
		}
	}
	over := *limit[0]
	over.value = bytes.Replace(over.value, []byte(`z"}}`), []byte(`zz"}}`), 1)
	err := produce(ctx, svc.Brokers[0], topic, []*rec{&over})
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("a record one byte over the limit: %v, want %v", err, kerr.MessageTooLarge)
	}
}
