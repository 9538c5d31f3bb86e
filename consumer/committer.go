package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// committer decides which offsets of one generation may be committed, and
// when. It is a plain value driven by commitLoop, so its rules have table
// tests of their own:
//
//   - per partition, the offset to commit is the next offset after the last
//     written batch (batches are written in order);
//   - a partition whose dead letter failed for good is stopped: its offset
//     never passes that record, while other partitions go on;
//   - commits are coalesced, at most one per interval; the interval is at
//     most 5 s, and the loop arms a timer for it, so offsets are committed
//     within 5 s also when the stream has gone quiet;
//   - after a commit or a dead-letter write fails for good the committer is
//     frozen: nothing more is committed in this generation, and err says
//     why written records were left uncommitted.
type committer struct {
	interval time.Duration
	pending  map[topicPartition]int64 // next offsets not yet committed
	hwm      map[topicPartition]int64 // high watermarks last seen
	stopped  map[topicPartition]int64 // offsets never to pass
	last     time.Time                // the last commit
	frozen   bool
	err      error
}

func newCommitter(interval time.Duration) *committer {
	return &committer{interval: interval, pending: map[topicPartition]int64{},
		hwm: map[topicPartition]int64{}, stopped: map[topicPartition]int64{}}
}

// add takes a written batch: the next offset and high watermark of each
// partition it touched, and the partitions its dead letters stopped.
func (c *committer) add(next, hwm, stopAt map[topicPartition]int64) {
	if c.frozen {
		return
	}
	for tp, off := range stopAt {
		if cur, ok := c.stopped[tp]; !ok || off < cur {
			c.stopped[tp] = off
		}
	}
	for tp, off := range next {
		if stop, ok := c.stopped[tp]; ok {
			off = min(off, stop) // up to the record that failed, never past it
		}
		c.pending[tp] = off
		c.hwm[tp] = hwm[tp]
	}
}

// due tells whether to commit at now, or else how long to wait; wait is
// 0 when nothing is pending.
func (c *committer) due(now time.Time) (commit bool, wait time.Duration) {
	if c.frozen || len(c.pending) == 0 {
		return false, 0
	}
	if wait = c.interval - now.Sub(c.last); wait <= 0 {
		return true, 0
	}
	return false, wait
}

// offsets returns what a commit should send, by topic and partition; nil
// when nothing is to be committed.
func (c *committer) offsets() map[string]map[int]int64 {
	if c.frozen || len(c.pending) == 0 {
		return nil
	}
	out := map[string]map[int]int64{}
	for tp, off := range c.pending {
		if out[tp.topic] == nil {
			out[tp.topic] = map[int]int64{}
		}
		out[tp.topic][tp.partition] = off
	}
	return out
}

// committed records that the offsets were committed at now and returns
// the consumer lag of each partition committed, stopped ones included.
func (c *committer) committed(now time.Time) map[topicPartition]int64 {
	lag := make(map[topicPartition]int64, len(c.pending))
	for tp, off := range c.pending {
		// a stopped partition too: its lag keeps growing while records
		// arrive behind the one that stopped it, so the lag alert fires
		lag[tp] = max(c.hwm[tp]-off, 0)
	}
	clear(c.pending)
	c.last = now
	return lag
}

// fail freezes the committer: written records stay uncommitted because of
// err.
func (c *committer) fail(err error) {
	if !c.frozen {
		c.frozen, c.err = true, err
	}
}

// commitFunc commits offsets by topic and partition.
type commitFunc func(offsets map[string]map[int]int64) error

// commitLoop feeds a committer with what the writer finished and commits
// when it is due, and once more when the writer is done. It returns why
// written records were left uncommitted, or nil: a dead-letter write did
// not finish before the drain ended, or the coordinator refused a commit
// for good (the generation is over; then it halts the generation, and the
// next owner gets those records again).
func (c *Consumer) commitLoop(in <-chan written, commit commitFunc, halt func()) error {
	cm := newCommitter(c.cfg.CommitInterval)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	flush := func() {
		offs := cm.offsets()
		if offs == nil {
			return
		}
		if c.cfg.BeforeCommit != nil {
			c.cfg.BeforeCommit()
		}
		if err := commit(offs); err != nil {
			c.log.Warn().Err(err).Msg("offsets not committed; those records will be delivered again")
			cm.fail(err)
			halt()
			return
		}
		now := time.Now()
		c.lag.update(cm.committed(now))
		c.m.lastProcessed.Set(float64(now.UnixNano()) / 1e9)
	}
	for {
		select {
		case w, ok := <-in:
			if !ok {
				flush()
				return cm.err
			}
			if cm.frozen {
				continue
			}
			var stopAt map[topicPartition]int64
			if w.dlq != nil {
				r := <-w.dlq
				if r.err != nil {
					c.log.Warn().Err(r.err).Msg("dead letters not written; their records and those after them will be delivered again")
					flush() // earlier batches are done
					cm.fail(r.err)
					continue
				}
				stopAt = r.stopAt
			}
			cm.add(w.next, w.hwm, stopAt)
			c.m.stoppedParts.Set(float64(len(cm.stopped)))
			if now, wait := cm.due(time.Now()); now {
				flush()
			} else if wait > 0 && !armed {
				timer.Reset(wait)
				armed = true
			}
		case <-timer.C:
			armed = false
			flush()
		}
	}
}

// commit commits offsets in gen, retrying a few times; it gives up at
// once when the generation is over.
func (c *Consumer) commit(ctx context.Context, gen *kafka.Generation, offsets map[string]map[int]int64) error {
	var err error
	retry := newRetrier(c.retry, c.log.With().Int32("generation", gen.ID).Logger(), "commit", c.touch)
	for retry.attempt < 4 {
		if err = gen.CommitOffsets(offsets); err == nil {
			return nil
		}
		c.m.commitErrors.Inc()
		var ke kafka.Error
		if errors.As(err, &ke) && (ke == kafka.IllegalGeneration || ke == kafka.UnknownMemberId || ke == kafka.RebalanceInProgress) {
			break // the generation is over; the next owner gets these records again
		}
		if !retry.wait(ctx, err) {
			break
		}
	}
	return fmt.Errorf("commit generation %d: %w", gen.ID, err)
}
