package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

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

func (c *Consumer) commit(ctx context.Context, gen *kafka.Generation, offsets map[string]map[int]int64) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if err = gen.CommitOffsets(offsets); err == nil {
			return nil
		}
		c.m.commitErrors.Inc()
		var ke kafka.Error
		if errors.As(err, &ke) && (ke == kafka.IllegalGeneration || ke == kafka.UnknownMemberId || ke == kafka.RebalanceInProgress) {
			break // the generation is over; the next owner gets these records again
		}
		if !sleep(ctx, c.backoff(attempt)) {
			break
		}
	}
	return fmt.Errorf("commit: %w", err)
}

// deadLetter writes the rejected records to the dead-letter topic and waits
// for the acknowledgement of all in-sync replicas. It retries temporary
// errors until ctx ends; a record whose write fails for good stops its
// partition: the returned map holds, per stopped partition, the offset of
// the first record that must not be committed.
func (c *Consumer) deadLetter(ctx context.Context, recs []decoded, dead []int, now time.Time) (map[topicPartition]int64, error) {
	failedAt := now.UTC().Format(time.RFC3339Nano)
	stopAt := map[topicPartition]int64{}
	pending := dead
	for attempt := 0; len(pending) > 0; attempt++ {
		msgs := make([]kafka.Message, len(pending))
		for j, i := range pending {
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
		err := c.dlq.WriteMessages(ctx, msgs...)
		if err == nil {
			for _, i := range pending {
				c.m.deadLettered.WithLabelValues(recs[i].rej.Reason).Inc()
				c.log.Info().Str("reason", recs[i].rej.Reason).Str("detail", recs[i].rej.Detail).
					Str("topic", recs[i].msg.Topic).Int("partition", recs[i].msg.Partition).
					Int64("offset", recs[i].msg.Offset).Msg("dead-lettered")
			}
			return stopAt, nil
		}
		var werrs kafka.WriteErrors
		var retry []int
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			for j, i := range pending {
				r := recs[i]
				switch {
				case werrs[j] == nil:
					c.m.deadLettered.WithLabelValues(r.rej.Reason).Inc()
				case isTemporary(werrs[j]):
					c.m.dlqErrors.WithLabelValues("temporary").Inc()
					retry = append(retry, i)
				default:
					c.m.dlqErrors.WithLabelValues("permanent").Inc()
					tp := topicPartition{r.msg.Topic, r.msg.Partition}
					if cur, ok := stopAt[tp]; !ok || r.msg.Offset < cur {
						stopAt[tp] = r.msg.Offset
					}
					c.log.Error().Err(werrs[j]).Str("topic", tp.topic).Int("partition", tp.partition).
						Int64("offset", r.msg.Offset).Msg("dead-letter write failed for good; partition stopped")
				}
			}
		} else if isTemporary(err) {
			c.m.dlqErrors.WithLabelValues("temporary").Inc()
			retry = pending
		} else {
			c.m.dlqErrors.WithLabelValues("permanent").Inc()
			for _, i := range pending {
				r := recs[i]
				tp := topicPartition{r.msg.Topic, r.msg.Partition}
				if cur, ok := stopAt[tp]; !ok || r.msg.Offset < cur {
					stopAt[tp] = r.msg.Offset
				}
			}
			c.log.Error().Err(err).Msg("dead-letter write failed for good; partitions stopped")
		}
		pending = retry
		if len(pending) > 0 {
			if attempt == 0 || attempt%20 == 0 {
				c.log.Warn().Err(err).Int("records", len(pending)).Msg("dead-letter write failed; retrying")
			}
			c.touch()
			if !sleep(ctx, c.backoff(attempt)) {
				return nil, fmt.Errorf("dead-letter: %w", err)
			}
		}
	}
	return stopAt, nil
}
