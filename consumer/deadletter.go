package consumer

import (
	kafkaconn "github.com/profiled/profiled/internal/kafka"

	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

	// HeaderValueDropped marks a dead letter the broker refused as too
	// large, written again with a null value: the value's length in bytes.
	HeaderValueDropped = "profiled.error.value_dropped"
	// HeaderKeyHeadersDropped marks a dead letter still too large without
	// its value, written again without the producer's key and headers:
	// their length in bytes.
	HeaderKeyHeadersDropped = "profiled.error.key_headers_dropped"

	// headerPrefix starts every header profiled sets; a producer's header
	// under it is renamed to originalPrefix + the rest of its name.
	headerPrefix   = "profiled."
	originalPrefix = "profiled.original."
)

// A dead letter refused as too large on its own is written again smaller,
// step by step; the original stays in the input topic, found by its
// profiled.source.* headers.
const (
	letterWhole        = iota // key, value and headers as they came
	letterNoValue             // null value
	letterNoKeyHeaders        // null value, no key, no producer headers
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

// write writes the rejected records recs to the dead-letter topic
// and waits for the acknowledgement of all in-sync replicas. It retries
// temporary errors until ctx ends; a record whose write fails for good
// stops its partition: the returned map holds, per stopped partition, the
// offset of the first record that must not be committed.
//
// The broker refuses a produce request larger than its message.max.bytes
// (1 MB by default) as a whole, so a few oversized records that each fit
// the topic can fail together. Records refused as too large are tried
// again at once, each in a request of its own; a record refused on its own
// is written again without its value, then also without the producer's
// key and headers. Only a dead letter too large even then (a topic limit
// below the size of profiled's own headers) fails for good.
func (d *deadLetterer) write(ctx context.Context, recs []decoded, now time.Time) (map[topicPartition]int64, error) {
	failedAt := now.UTC().Format(time.RFC3339Nano)
	stopAt := map[topicPartition]int64{}
	alone := map[int]bool{} // records to write one per request
	shape := map[int]int{}  // letterWhole, letterNoValue, letterNoKeyHeaders
	pending := make([]int, len(recs))
	for i := range pending {
		pending[i] = i
	}
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
			err := group.w.WriteMessages(ctx, letters(recs, group.idx, shape, failedAt)...)
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
				case errors.Is(e, kafka.MessageSizeTooLarge) && shape[i] < letterNoKeyHeaders:
					shape[i]++
					d.log.Warn().Str("topic", r.msg.Topic).Int("partition", r.msg.Partition).Int64("offset", r.msg.Offset).
						Int("value_bytes", len(r.msg.Value)).Msg("dead letter too large for the dead-letter topic; writing it again smaller")
					retry = append(retry, i)
				case kafkaconn.IsTemporary(e):
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
// headers as they came (a producer's profiled.* header renamed), plus the
// contract's headers; smaller where shape says so.
func letters(recs []decoded, idx []int, shape map[int]int, failedAt string) []kafka.Message {
	msgs := make([]kafka.Message, len(idx))
	for j, i := range idx {
		r := recs[i]
		key, value := r.msg.Key, r.msg.Value
		h := make([]kafka.Header, 0, len(r.msg.Headers)+8)
		dropped := len(key)
		for _, ph := range r.msg.Headers {
			dropped += len(ph.Key) + len(ph.Value)
			if shape[i] < letterNoKeyHeaders {
				if rest, ok := strings.CutPrefix(ph.Key, headerPrefix); ok {
					ph.Key = originalPrefix + rest
				}
				h = append(h, ph)
			}
		}
		h = append(h,
			kafka.Header{Key: HeaderReason, Value: []byte(r.rej.Reason)},
			kafka.Header{Key: HeaderDetail, Value: []byte(r.rej.Detail)},
			kafka.Header{Key: HeaderSourceTopic, Value: []byte(r.msg.Topic)},
			kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(r.msg.Partition))},
			kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.msg.Offset, 10))},
			kafka.Header{Key: HeaderFailedAt, Value: []byte(failedAt)},
		)
		if shape[i] >= letterNoValue {
			h = append(h, kafka.Header{Key: HeaderValueDropped, Value: []byte(strconv.Itoa(len(value)))})
			value = nil
		}
		if shape[i] >= letterNoKeyHeaders {
			h = append(h, kafka.Header{Key: HeaderKeyHeadersDropped, Value: []byte(strconv.Itoa(dropped))})
			key = nil
		}
		msgs[j] = kafka.Message{Key: key, Value: value, Headers: h}
	}
	return msgs
}
