package consumer

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/profile"
)

// The records of one generation flow through three stages, each one
// goroutine, so that decoding, writing and committing overlap and Redis is
// never left waiting on profiled:
//
//	collect: decode each record as it arrives and fold it into its
//	         partition's lane (lanes.go); hand a batch over when the writer
//	         asks for one
//	write:   dead letters, then one Redis pipeline for the batch; batches
//	         are written one at a time, in order, each retried until done
//	commit:  commit the offsets of what was written, at most once per
//	         CommitInterval, and at the end of the generation
//
// Per partition, records enter batches in offset order and batches are
// written in order, so the offsets the committer holds always cover only
// records that were written or dead-lettered.

// batch is a set of records decoded and folded, ready to write.
type batch struct {
	recs    recList
	dead    []decoded // the rejected records, whole, for the dead letters
	updates map[string]*profile.Update
	order   []*profile.Update
	sources map[topicPartition]string // log ids of the batch's partitions
	first   time.Time                 // arrival of the first record, for the linger
	decoded time.Duration
	behind  bool            // a lane whose partition had more records at the broker (lanes.go)
	fields  []profile.Field // the last event's fields, for the next (DecodeInto)
}

// decoded is a record as it came, with its event or why it was rejected.
type decoded struct {
	msg kafka.Message
	ev  profile.Event
	rej *profile.Rejection
}

// rec is what a batch keeps of each record once it is folded: where it
// is in its log, and what the metrics read of it after the write.
type rec struct {
	msg     position
	kind    profile.Kind
	dead    bool // rejected: in the batch's dead letters
	time    int64
	skip    string
	dropped []profile.Drop
}

// position is a record's place in its log (named as in kafka.Message).
type position struct {
	Topic         string
	Partition     int
	Offset        int64
	HighWaterMark int64
}

func newBatch() *batch {
	return &batch{updates: map[string]*profile.Update{}, sources: map[topicPartition]string{}}
}

// recList is a batch's records, in chunks that grow to recChunk records:
// it grows without copying what it holds (a lane's records in one slice
// that doubled as it filled were 15% of the bytes profiled allocated in a
// 1,000,000-record pipeline run), and takes another list's records by
// their chunks.
type recList struct {
	chunks [][]rec
	n      int
}

// recChunk is the most records of one chunk.
const recChunk = 2048

// add appends r.
func (l *recList) add(r rec) {
	k := len(l.chunks)
	if k == 0 || len(l.chunks[k-1]) == cap(l.chunks[k-1]) {
		size := 64
		if k > 0 {
			size = min(2*cap(l.chunks[k-1]), recChunk)
		}
		l.chunks = append(l.chunks, make([]rec, 0, size))
		k++
	}
	l.chunks[k-1] = append(l.chunks[k-1], r)
	l.n++
}

// addAll appends o's records, which o then shares: o is not added to again.
func (l *recList) addAll(o recList) {
	l.chunks = append(l.chunks, o.chunks...)
	l.n += o.n
}

// len is the number of records.
func (l *recList) len() int { return l.n }

// at returns the i-th record.
func (l *recList) at(i int) *rec {
	for _, c := range l.chunks {
		if i < len(c) {
			return &c[i]
		}
		i -= len(c)
	}
	panic("recList: index out of range")
}

// all yields the records in order.
func (l *recList) all() iter.Seq[*rec] {
	return func(yield func(*rec) bool) {
		for _, c := range l.chunks {
			for i := range c {
				if !yield(&c[i]) {
					return
				}
			}
		}
	}
}

// add decodes one record into the batch; ids name the log of its
// partition.
func (b *batch) add(dec *profile.Decoder, ids *topicIDs, m kafka.Message) {
	start := time.Now()
	if b.recs.len() == 0 {
		b.first = start
	}
	value := m.Value
	if len(value) == 0 {
		// A null and an empty value are both tombstones (contract section
		// 1): kafka-go hands both over as nil anyway, and saying so here
		// keeps it true whatever the client does.
		value = nil
	}
	ev, err := dec.DecodeInto(b.fields, value, m.Time, start)
	r := decoded{msg: m, ev: ev}
	if err != nil {
		var rej *profile.Rejection
		if !errors.As(err, &rej) {
			rej = &profile.Rejection{Reason: profile.ReasonInvalidJSON, Detail: "undecodable"}
		}
		r.rej = rej
	}
	b.put(ids, r)
	if cap(ev.Fields) > 0 {
		b.fields = ev.Fields // folded: the next record's event takes them over
	}
	b.decoded += time.Since(start)
}

// put adds a decoded record: a rejected one to the dead letters, an
// applied one to its profile's update.
//
// Once folded, a record keeps only what the writer reads after the
// Apply (its position, its event's kind, time and dropped fields): its
// value and its event's fields live on in the update, and holding them
// per record until the batch is written made them most of the live heap
// (which the collector's goal, and so the RSS, follows).
func (b *batch) put(ids *topicIDs, r decoded) {
	m := &r.msg
	k := rec{msg: position{m.Topic, m.Partition, m.Offset, m.HighWaterMark}}
	if r.rej != nil {
		b.dead = append(b.dead, r)
		k.dead = true
	} else {
		if r.ev.Kind != profile.KindIgnored {
			b.fold(ids, r)
		}
		k.kind, k.time, k.skip, k.dropped = r.ev.Kind, r.ev.Time, r.ev.SkipReason, r.ev.Dropped
	}
	b.recs.add(k)
}

// maxCountsPerUpdate bounds the launches and visits of one update: a
// profile whose share of a batch is larger (a bot, a load test) gets
// several updates, applied in order, so that no single store call (one
// Lua script, which blocks Redis while it runs) grows with the batch size.
const maxCountsPerUpdate = 1000

func (b *batch) fold(ids *topicIDs, r decoded) {
	u, ok := b.updates[r.ev.ProfileID]
	if !ok || len(u.Counts) >= maxCountsPerUpdate {
		u = profile.NewUpdate(r.ev.ProfileID)
		b.updates[r.ev.ProfileID] = u
		b.order = append(b.order, u)
	}
	tp := topicPartition{r.msg.Topic, r.msg.Partition}
	src, ok := b.sources[tp]
	if !ok { // once per partition and batch, not per record
		src = ids.source(tp.topic, tp.partition)
		b.sources[tp] = src
	}
	u.Add(r.ev, src, r.msg.Offset)
}

// written is what the writer hands the committer: the next offset of each
// partition the batch touched, the high watermarks seen, and, when the
// batch held rejected records, the outcome of their dead-letter write
// (which the committer waits for before it commits past them).
type written struct {
	next map[topicPartition]int64
	hwm  map[topicPartition]int64
	dlq  <-chan dlqResult
}

type dlqResult struct {
	stopAt map[topicPartition]int64 // partitions stopped by a dead letter that failed for good
	err    error                    // the write did not finish before the drain ended
}

// process runs the three stages of one generation and returns when they
// have stopped: the generation ended (its batch in hand finished within
// DrainTimeout) or a commit showed that the generation is over.
func (c *Consumer) process(gctx context.Context, gen *kafka.Generation, in <-chan kafka.Message) {
	// rctx bounds retries: unlimited while the generation lives, then
	// DrainTimeout more to finish the work in hand.
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{}) // closed by the committer when a commit fails for good
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	go func() {
		select {
		case <-gctx.Done():
		case <-stop:
		case <-rctx.Done():
			return
		}
		t := time.NewTimer(c.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-rctx.Done():
		}
	}()

	want := make(chan struct{})   // the writer is free and asks for a batch
	batches := make(chan *batch)  // unbuffered: the answer, or the generation's last batches
	done := make(chan written, 4) // written batches, in order
	var writeErr, commitErr error // set before their goroutines end
	commit := func(offs map[string]map[int]int64) error { return c.commit(rctx, gen, offs) }
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.collect(gctx, stop, in, want, batches) }()
	go func() { defer wg.Done(); writeErr = c.writeAll(rctx, want, batches, done) }()
	go func() { defer wg.Done(); commitErr = c.commitLoop(done, commit, halt) }()
	wg.Wait()
	// Work left undone is delivered again to the next owner; only when
	// this was the last generation (shutdown) is it Run's error.
	var err error
	if gctx.Err() != nil {
		err = errors.Join(writeErr, commitErr)
	}
	c.unfinished.Store(&err)
}

// collect decodes records into lanes (lanes.go) and hands a batch to the
// writer each time the writer asks for one (want) and one is due: a full
// lane at once, else once the oldest record held has lingered BatchTime.
// The writer asks first, so that the batch is chosen when it is taken:
// records keep joining the lanes while the writer is busy.
func (c *Consumer) collect(gctx context.Context, stop <-chan struct{}, in <-chan kafka.Message, want <-chan struct{}, out chan<- *batch) {
	defer close(out)
	l := newLanes(c.cfg.BatchSize)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lingered := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var ask <-chan struct{}
		if l.full() || (lingered && l.anyDue(time.Now())) {
			ask = want
		}
		var recv <-chan kafka.Message
		if !l.full() {
			recv = in // full: wait for the writer, and stop taking records
		}
		select {
		case m := <-recv:
			if l.empty() { // BatchTime is at least 1ms after setDefaults
				lingered = false
				linger.Reset(c.cfg.BatchTime)
			}
			l.add(c.dec, c.ids, m)
			c.drain(in, l)
		case <-linger.C:
			lingered = true
		case <-ask:
			out <- l.take(time.Now()) // the writer waits for it
			if l.empty() {
				linger.Stop()
				lingered = false
			}
		case <-tick.C:
			c.touch()
		case <-gctx.Done():
			handOver(stop, l.rest(), out)
			return
		case <-stop:
			return
		}
	}
}

// drain adds the records already waiting in in to the lanes, until a
// batch is full, without blocking. A receive with a default case is far
// cheaper than the collector's full select, which the pipeline profile
// showed at 4% of profiled's CPU when it ran once per record.
func (c *Consumer) drain(in <-chan kafka.Message, l *lanes) {
	for !l.full() {
		select {
		case m := <-in:
			l.add(c.dec, c.ids, m)
		default:
			return
		}
	}
}

// handOver gives the writer the last batches of a generation, unless the
// generation was stopped by a failed commit (then nothing more is written).
func handOver(stop <-chan struct{}, bs []*batch, out chan<- *batch) {
	for _, b := range bs {
		if b.recs.len() == 0 {
			continue
		}
		select {
		case out <- b:
		case <-stop:
			return
		}
	}
}

// writeAll writes batches in order until the collector closes in. It
// returns an error when a batch could not be written before rctx ended;
// the batches after it are then dropped unwritten (and uncommitted).
func (c *Consumer) writeAll(rctx context.Context, want chan<- struct{}, in <-chan *batch, done chan<- written) error {
	defer close(done)
	var failed error
	for {
		var b *batch
		var ok bool
		select {
		case want <- struct{}{}: // free: the collector answers with a batch
			b, ok = <-in
		case b, ok = <-in: // the last batches of the generation, and the end
		}
		if !ok {
			return failed
		}
		if failed != nil {
			continue
		}
		w, err := c.write(rctx, b)
		if err != nil {
			c.log.Warn().Err(err).Msg("batch not written; its records will be delivered again")
			failed = fmt.Errorf("batch not written: %w", err)
			continue
		}
		done <- w
	}
}

// write starts the dead-letter write of the rejected records, applies the
// updates, and returns the offsets to commit.
//
// Dead letters do not hold up the writer: they concern other records than
// the Redis write, and waiting for their acknowledgement here would add a
// Kafka round trip to every batch that holds a bad record. The committer
// waits for it instead, so no offset passes a record before its dead
// letter is acknowledged. A dead letter that fails for good stops its
// partition at that record; records after it that reached Redis are
// harmless: never committed, and recognised by their offsets when they are
// delivered again.
func (c *Consumer) write(ctx context.Context, b *batch) (written, error) {
	start := time.Now()
	c.m.batchSize.Observe(float64(b.recs.len()))
	w := written{next: map[topicPartition]int64{}, hwm: map[topicPartition]int64{}}
	if len(b.dead) > 0 {
		ch := make(chan dlqResult, 1)
		w.dlq = ch
		go func() {
			stopAt, err := c.dlq.write(ctx, b.dead, start)
			ch <- dlqResult{stopAt: stopAt, err: err}
		}()
	}

	applyStart := time.Now()
	if len(b.order) > 0 {
		retry := newRetrier(c.retry, c.log.With().Int("profiles", len(b.order)).Logger(), "store write", c.touch)
		for {
			err := c.store.Apply(ctx, b.order)
			if err == nil {
				c.storeFailing.Store(false)
				break
			}
			c.storeFailing.Store(true)
			if !retry.wait(ctx, err) {
				if w.dlq != nil {
					<-w.dlq
				}
				return written{}, err
			}
		}
	}
	now := time.Now()
	// counters are added up per batch: a labelled counter's lookup hashes
	// its labels, too dear to pay for every record
	kinds := map[profile.Kind]int{}
	consumed := map[string]int{}
	skipped := map[string]int{}
	for r := range b.recs.all() {
		tp := topicPartition{r.msg.Topic, r.msg.Partition}
		consumed[tp.topic]++
		w.next[tp] = r.msg.Offset + 1
		w.hwm[tp] = r.msg.HighWaterMark
		switch {
		case r.dead:
		case r.kind == profile.KindIgnored:
			skipped[r.skip]++
		default:
			kinds[r.kind]++
			c.m.eventLag.Observe(float64(now.UnixMilli()-r.time) / 1000)
			for _, d := range r.dropped {
				c.m.fieldsDropped.WithLabelValues(d.Field, d.Reason).Inc()
			}
		}
	}
	for k, n := range kinds {
		c.m.applied.WithLabelValues(k.String()).Add(float64(n))
	}
	for topic, n := range consumed {
		c.m.consumed.WithLabelValues(topic).Add(float64(n))
	}
	for reason, n := range skipped {
		c.m.skipped.WithLabelValues(reason).Add(float64(n))
	}
	if e := c.log.Debug(); e.Enabled() {
		e.Int("records", b.recs.len()).Int("profiles", len(b.order)).Int("dead", len(b.dead)).
			Dur("decode", b.decoded).Dur("wait", start.Sub(b.first)).Dur("apply", now.Sub(applyStart)).
			Msg("batch written")
	}
	if c.cfg.OnBatch != nil {
		c.cfg.OnBatch(b.info())
	}
	return w, nil
}

// info describes the batch for Config.OnBatch. Records of a partition
// enter a batch in offset order, so each partition's records are the
// range First..Last of its log (ranges in order of first appearance).
func (b *batch) info() BatchInfo {
	at := map[topicPartition]int{}
	var ranges []OffsetRange
	for r := range b.recs.all() {
		tp := topicPartition{r.msg.Topic, r.msg.Partition}
		i, ok := at[tp]
		if !ok {
			i = len(ranges)
			at[tp] = i
			ranges = append(ranges, OffsetRange{Topic: tp.topic, Partition: tp.partition, First: r.msg.Offset})
		}
		ranges[i].Last = r.msg.Offset
	}
	return BatchInfo{Ranges: ranges, Records: b.recs.len(), Profiles: len(b.order), Dead: len(b.dead)}
}
