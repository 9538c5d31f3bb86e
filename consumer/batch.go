package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/profile"
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

type decoded struct {
	msg *kafka.Message
	ev  profile.Event
	rej *profile.Rejection
}

// flush processes one batch: decode, dead-letter, fold, apply, commit.
// It returns nil only when the batch's offsets were committed.
func (c *Consumer) flush(ctx context.Context, gen *kafka.Generation, st *genState, batch []kafka.Message) error {
	now := c.now()
	c.m.batchSize.Observe(float64(len(batch)))
	recs := make([]decoded, len(batch))
	var dead []int
	for i := range batch {
		m := &batch[i]
		c.m.consumed.WithLabelValues(m.Topic).Inc()
		ev, err := c.dec.Decode(m.Value, m.Time, now)
		recs[i] = decoded{msg: m, ev: ev}
		if err != nil {
			var rej *profile.Rejection
			if !errors.As(err, &rej) {
				rej = &profile.Rejection{Reason: profile.ReasonInvalidJSON, Detail: "undecodable"}
			}
			recs[i].rej = rej
			dead = append(dead, i)
		}
	}

	// Dead letters first: a record is committed only after its dead-letter
	// write is acknowledged, and a write that fails for good stops its
	// partition at that record.
	stopAt := map[topicPartition]int64{}
	if len(dead) > 0 {
		var err error
		stopAt, err = c.deadLetter(ctx, recs, dead, now)
		if err != nil {
			return err
		}
	}

	updates := map[string]*profile.Update{}
	var order []*profile.Update
	kinds := map[profile.Kind]int{}
	var lags []float64
	next := map[topicPartition]kafka.Message{}
	for _, r := range recs {
		tp := topicPartition{r.msg.Topic, r.msg.Partition}
		if stop, ok := stopAt[tp]; ok && r.msg.Offset >= stop {
			continue
		}
		next[tp] = *r.msg
		if r.rej != nil {
			continue
		}
		if r.ev.Kind == profile.KindIgnored {
			c.m.skipped.WithLabelValues(r.ev.SkipReason).Inc()
			continue
		}
		for _, d := range r.ev.Dropped {
			c.m.fieldsDropped.WithLabelValues(d.Field, d.Reason).Inc()
		}
		u, ok := updates[r.ev.ProfileID]
		if !ok {
			u = profile.NewUpdate(r.ev.ProfileID)
			updates[r.ev.ProfileID] = u
			order = append(order, u)
		}
		u.Add(r.ev, c.source(r.msg.Topic, r.msg.Partition), r.msg.Offset)
		kinds[r.ev.Kind]++
		lags = append(lags, float64(now.UnixMilli()-r.ev.Time)/1000)
	}

	if len(order) > 0 {
		for attempt := 0; ; attempt++ {
			start := time.Now()
			res, err := c.store.Apply(ctx, order)
			if err == nil {
				c.m.redisLatency.Observe(time.Since(start).Seconds())
				c.sinkFailing.Store(false)
				c.m.created.Add(float64(res.Created))
				c.m.duplicates.WithLabelValues("message_id").Add(float64(res.DupMessageID))
				c.m.duplicates.WithLabelValues("redelivered").Add(float64(res.DupRedelivered))
				break
			}
			c.m.redisErrors.Inc()
			c.sinkFailing.Store(true)
			if attempt == 0 || attempt%20 == 0 {
				c.log.Warn().Err(err).Int("attempt", attempt+1).Int("profiles", len(order)).Msg("redis write failed; retrying with back-off")
			}
			c.touch()
			if !sleep(ctx, c.backoff(attempt)) {
				return fmt.Errorf("redis: %w", err)
			}
		}
	}
	for k, n := range kinds {
		c.m.applied.WithLabelValues(k.String()).Add(float64(n))
	}
	for _, l := range lags {
		c.m.eventLag.Observe(l)
	}

	offsets := map[string]map[int]int64{}
	add := func(tp topicPartition, off int64) {
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = map[int]int64{}
		}
		offsets[tp.topic][tp.partition] = off
	}
	for tp, m := range next {
		add(tp, m.Offset+1)
	}
	for tp, stop := range stopAt {
		add(tp, stop) // everything before the record that could not be dead-lettered
	}
	if c.cfg.BeforeCommit != nil {
		c.cfg.BeforeCommit()
	}
	if err := c.commit(ctx, gen, offsets); err != nil {
		return err
	}
	for tp, m := range next {
		if _, stopped := stopAt[tp]; !stopped {
			c.m.consumerLag.WithLabelValues(tp.topic, strconv.Itoa(tp.partition)).Set(float64(max(m.HighWaterMark-m.Offset-1, 0)))
		}
	}
	for tp := range stopAt {
		st.stopped[tp] = true
	}
	c.m.stoppedParts.Set(float64(len(st.stopped)))
	c.m.lastProcessed.Set(float64(time.Now().UnixNano()) / 1e9)
	return nil
}

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
