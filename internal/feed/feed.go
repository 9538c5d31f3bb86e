// Package feed produces events to Kafka the way event pipelines do: one
// JSON object per record, keyed by userId, else anonymousId, as
// RudderStack's Kafka destination keys them.
package feed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Key returns the record key RudderStack would choose for an event value:
// userId when present, else anonymousId, else nil.
func Key(value []byte) []byte {
	var ids struct {
		UserID      json.RawMessage `json:"userId"`
		AnonymousID json.RawMessage `json:"anonymousId"`
	}
	if json.Unmarshal(value, &ids) != nil {
		return nil
	}
	for _, raw := range []json.RawMessage{ids.UserID, ids.AnonymousID} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s != "" {
				return []byte(s)
			}
			continue
		}
		if _, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return []byte(raw)
		}
	}
	return nil
}

// NewWriter returns a synchronous writer that waits for all in-sync replicas.
func NewWriter(brokers []string, topic string, transport *kafka.Transport) *kafka.Writer {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   16 << 20,
		BatchTimeout: 5 * time.Millisecond,
		WriteTimeout: 30 * time.Second,
	}
	if transport != nil {
		w.Transport = transport
	}
	return w
}

// Lines writes every non-empty line of r as one record, in batches, and
// returns how many it wrote.
func Lines(ctx context.Context, w *kafka.Writer, r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var batch []kafka.Message
	n := 0
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return fmt.Errorf("write records %d..%d: %w", n+1, n+len(batch), err)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		v := append([]byte(nil), line...)
		batch = append(batch, kafka.Message{Key: Key(v), Value: v})
		if len(batch) == 1000 {
			if err := send(); err != nil {
				return n, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	return n, send()
}
