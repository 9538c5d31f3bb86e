package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Dead-letter headers (contract section 7).
const (
	HeaderReason          = "profiled.error.reason"
	HeaderDetail          = "profiled.error.detail"
	HeaderSourceTopic     = "profiled.source.topic"
	HeaderSourcePartition = "profiled.source.partition"
	HeaderSourceOffset    = "profiled.source.offset"
	HeaderFailedAt        = "profiled.failed_at"
)

// deadLetterer writes rejected records to the dead-letter topic.
type deadLetterer struct {
	// batch sends many records per produce request; one sends one, for
	// dead letters the broker refused as part of a request over its size
	// limit, so that only a record too large on its own fails for good.
	batch, one *kafka.Writer
	log        zerolog.Logger
	m          *Metrics
	retry      retrier // a template: each write counts its own attempts
}

func newDeadLetterer(cfg Config, transport *kafka.Transport, m *Metrics, retry *retrier) *deadLetterer {
	writer := func(batchSize int) *kafka.Writer {
		return &kafka.Writer{
			Addr:         kafka.TCP(cfg.Conn.Brokers...),
			Topic:        cfg.DLQTopic,
			Balancer:     &kafka.Hash{},
			RequiredAcks: kafka.RequireAll,
			MaxAttempts:  1, // retried here, where what is at stake is known
			BatchSize:    batchSize,
			BatchBytes:   64 << 20,
			BatchTimeout: time.Millisecond,
			WriteTimeout: 10 * time.Second,
			Transport:    transport,
		}
	}
	return &deadLetterer{batch: writer(1000), one: writer(1), log: retry.log, m: m, retry: *retry}
}

// Close closes the writers.
func (d *deadLetterer) Close() error {
	return errors.Join(d.batch.Close(), d.one.Close())
}

// write writes the rejected records recs[dead...] to the dead-letter topic
// and waits for the acknowledgement of all in-sync replicas. It retries
// temporary errors until ctx ends; a record whose write fails for good
// stops its partition: the returned map holds, per stopped partition, the
// offset of the first record that must not be committed.
//
// The broker refuses a produce request larger than its message.max.bytes
// (1 MB by default) as a whole, so a few oversized records that each fit
// the topic can fail together. Records refused as too large are tried
// again at once, each in a request of its own; only a record refused on
// its own is too large for good.
func (d *deadLetterer) write(ctx context.Context, recs []decoded, dead []int, now time.Time) (map[topicPartition]int64, error) {
	failedAt := now.UTC().Format(time.RFC3339Nano)
	stopAt := map[topicPartition]int64{}
	alone := map[int]bool{} // records to write one per request
	pending := dead
	rt := d.retry
	for len(pending) > 0 {
		var together, single, retry []int
		for _, i := range pending {
			if alone[i] {
				single = append(single, i)
			} else {
				together = append(together, i)
			}
		}
		var lastErr error
		tooLargeOnly := true // every retry is a first try alone: no back-off
		for _, group := range [...]struct {
			w   *kafka.Writer
			idx []int
		}{{d.batch, together}, {d.one, single}} {
			if len(group.idx) == 0 {
				continue
			}
			err := group.w.WriteMessages(ctx, letters(recs, group.idx, failedAt)...)
			var werrs kafka.WriteErrors
			perRecord := errors.As(err, &werrs) && len(werrs) == len(group.idx)
			for j, i := range group.idx {
				r := recs[i]
				e := err
				if perRecord {
					e = werrs[j]
				}
				switch {
				case e == nil:
					d.m.deadLettered.WithLabelValues(r.rej.Reason).Inc()
					d.log.Info().Str("reason", r.rej.Reason).Str("detail", r.rej.Detail).
						Str("topic", r.msg.Topic).Int("partition", r.msg.Partition).
						Int64("offset", r.msg.Offset).Msg("dead-lettered")
				case errors.Is(e, kafka.MessageSizeTooLarge) && !alone[i]:
					alone[i] = true
					retry = append(retry, i)
				case isTemporary(e):
					d.m.dlqErrors.WithLabelValues("temporary").Inc()
					retry = append(retry, i)
					lastErr, tooLargeOnly = e, false
				default:
					d.m.dlqErrors.WithLabelValues("permanent").Inc()
					tp := topicPartition{r.msg.Topic, r.msg.Partition}
					if cur, ok := stopAt[tp]; !ok || r.msg.Offset < cur {
						stopAt[tp] = r.msg.Offset
					}
					d.log.Error().Err(e).Str("topic", tp.topic).Int("partition", tp.partition).
						Int64("offset", r.msg.Offset).Msg("dead-letter write failed for good; partition stopped")
				}
			}
		}
		pending = retry
		if len(pending) > 0 && !tooLargeOnly && !rt.wait(ctx, lastErr) {
			return nil, fmt.Errorf("dead-letter: %w", lastErr)
		}
	}
	return stopAt, nil
}

// letters returns the dead letters of the records at idx: key, value and
// headers unchanged, plus the contract's headers.
func letters(recs []decoded, idx []int, failedAt string) []kafka.Message {
	msgs := make([]kafka.Message, len(idx))
	for j, i := range idx {
		r := recs[i]
		h := make([]kafka.Header, 0, len(r.msg.Headers)+6)
		h = append(h, r.msg.Headers...)
		h = append(h,
			kafka.Header{Key: HeaderReason, Value: []byte(r.rej.Reason)},
			kafka.Header{Key: HeaderDetail, Value: []byte(r.rej.Detail)},
			kafka.Header{Key: HeaderSourceTopic, Value: []byte(r.msg.Topic)},
			kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(r.msg.Partition))},
			kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.msg.Offset, 10))},
			kafka.Header{Key: HeaderFailedAt, Value: []byte(failedAt)},
		)
		msgs[j] = kafka.Message{Key: r.msg.Key, Value: r.msg.Value, Headers: h}
	}
	return msgs
}
