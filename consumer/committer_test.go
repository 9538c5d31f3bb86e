package consumer

import (
	"errors"
	"io"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

var (
	p0 = topicPartition{"events", 0}
	p1 = topicPartition{"events", 1}
	q0 = topicPartition{"other", 0}
)

type tpOffsets = map[topicPartition]int64

// step is one written batch handed to the committer.
type step struct {
	next, hwm, stopAt tpOffsets
	commit            bool // commit after this step
}

func offsetsOf(m tpOffsets) map[string]map[int]int64 {
	if len(m) == 0 {
		return nil
	}
	out := map[string]map[int]int64{}
	for tp, off := range m {
		if out[tp.topic] == nil {
			out[tp.topic] = map[int]int64{}
		}
		out[tp.topic][tp.partition] = off
	}
	return out
}

// TestCommitterOffsets: what may be committed after a sequence of written
// batches, and the lag reported per committed partition.
func TestCommitterOffsets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		steps   []step
		want    tpOffsets // offsets of the last commit
		lag     tpOffsets // lag reported by the last commit
		stopped int
	}{
		{
			name: "in-order completion: the next offset after the last written batch",
			steps: []step{
				{next: tpOffsets{p0: 10, p1: 3}, hwm: tpOffsets{p0: 20, p1: 3}},
				{next: tpOffsets{p0: 15, q0: 1}, hwm: tpOffsets{p0: 20, q0: 9}, commit: true},
			},
			want: tpOffsets{p0: 15, p1: 3, q0: 1},
			lag:  tpOffsets{p0: 5, p1: 0, q0: 8},
		},
		{
			name: "a commit sends only what was written since the last one",
			steps: []step{
				{next: tpOffsets{p0: 10, p1: 3}, commit: true},
				{next: tpOffsets{p1: 7}, hwm: tpOffsets{p1: 7}, commit: true},
			},
			want: tpOffsets{p1: 7},
			lag:  tpOffsets{p1: 0},
		},
		{
			name: "a dead letter that failed for good stops its partition at that offset; others go on; its lag keeps growing",
			steps: []step{
				{next: tpOffsets{p0: 10, p1: 10}, hwm: tpOffsets{p0: 10, p1: 10}, stopAt: tpOffsets{p0: 6}, commit: true},
				{next: tpOffsets{p0: 20, p1: 20}, hwm: tpOffsets{p0: 30, p1: 20}, commit: true},
			},
			want:    tpOffsets{p0: 6, p1: 20},
			lag:     tpOffsets{p0: 24, p1: 0},
			stopped: 1,
		},
		{
			name: "a later failure does not move the stop forward; an earlier one moves it back",
			steps: []step{
				{next: tpOffsets{p0: 10}, stopAt: tpOffsets{p0: 6}},
				{next: tpOffsets{p0: 20}, stopAt: tpOffsets{p0: 15}},
				{next: tpOffsets{p0: 30}, hwm: tpOffsets{p0: 40}, stopAt: tpOffsets{p0: 4}, commit: true},
			},
			want:    tpOffsets{p0: 4},
			lag:     tpOffsets{p0: 36},
			stopped: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := newCommitter(100 * time.Millisecond)
			var got map[string]map[int]int64
			var lag tpOffsets
			for _, s := range tc.steps {
				cm.add(s.next, s.hwm, s.stopAt)
				if s.commit {
					got = cm.offsets()
					lag = cm.committed(time.Now())
				}
			}
			if !reflect.DeepEqual(got, offsetsOf(tc.want)) {
				t.Errorf("committed %v, want %v", got, offsetsOf(tc.want))
			}
			if !reflect.DeepEqual(lag, tc.lag) {
				t.Errorf("lag %v, want %v", lag, tc.lag)
			}
			if len(cm.stopped) != tc.stopped {
				t.Errorf("%d partitions stopped, want %d", len(cm.stopped), tc.stopped)
			}
			if cm.offsets() != nil {
				t.Errorf("offsets left after the commit: %v", cm.offsets())
			}
		})
	}
}

// TestCommitterCoalesces: at most one commit per interval; what comes in
// between waits for the rest of the interval and is committed with it.
// Every wait is at most the interval (at most 5 s: Validate), so a quiet
// stream is committed within the contract's bound.
func TestCommitterCoalesces(t *testing.T) {
	const interval = 100 * time.Millisecond
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name       string
		lastCommit time.Time // zero: none yet
		add        bool
		at         time.Time
		commit     bool
		wait       time.Duration
	}{
		{"nothing pending: nothing to do", ms(0), false, ms(5), false, 0},
		{"first batch of a generation: at once", time.Time{}, true, ms(0), true, 0},
		{"after a long quiet: at once", ms(0), true, ms(60_000), true, 0},
		{"within the interval: wait for its rest", ms(0), true, ms(30), false, 70 * time.Millisecond},
		{"at the interval's end: now", ms(0), true, ms(100), true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm := newCommitter(interval)
			if !tc.lastCommit.IsZero() {
				cm.add(tpOffsets{p0: 1}, nil, nil)
				cm.committed(tc.lastCommit)
			}
			if tc.add {
				cm.add(tpOffsets{p0: 2}, nil, nil)
			}
			commit, wait := cm.due(tc.at)
			if commit != tc.commit || wait != tc.wait {
				t.Errorf("due = %v, %s; want %v, %s", commit, wait, tc.commit, tc.wait)
			}
			if wait > interval {
				t.Errorf("wait %s beyond the interval %s", wait, interval)
			}
		})
	}
}

// TestCommitterFrozen: after a failure nothing more is committed in the
// generation, and the first failure is the reason kept.
func TestCommitterFrozen(t *testing.T) {
	cm := newCommitter(0)
	cm.add(tpOffsets{p0: 5}, nil, nil)
	first := errors.New("not the coordinator's generation")
	cm.fail(first)
	cm.fail(errors.New("later"))
	cm.add(tpOffsets{p0: 9}, nil, nil)
	if commit, _ := cm.due(time.Now()); commit || cm.offsets() != nil {
		t.Errorf("a frozen committer wants to commit %v", cm.offsets())
	}
	if cm.err != first {
		t.Errorf("err %v, want the first failure", cm.err)
	}
}

// loopConsumer is a Consumer with just what commitLoop uses.
func loopConsumer(interval time.Duration) *Consumer {
	m := NewMetrics(prometheus.NewRegistry())
	return &Consumer{cfg: Config{CommitInterval: interval}, log: zerolog.New(io.Discard), m: m,
		lag: &lagGauges{vec: m.consumerLag, set: map[topicPartition]bool{}}}
}

// recorder is a commitFunc that remembers each commit.
type recorder struct {
	mu        sync.Mutex
	commits   []map[string]map[int]int64
	fail      error // returned by every commit after the first failAfter
	failAfter int
}

func (r *recorder) commit(offs map[string]map[int]int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commits = append(r.commits, offs)
	if len(r.commits) > r.failAfter {
		return r.fail
	}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.commits)
}

// TestCommitterQuietStreamWithinBound: one batch, then nothing: the loop
// commits it by itself, within the interval, not when the next batch comes.
// The loop's timer is what makes the 5 s bound hold when the stream goes
// quiet.
func TestCommitterQuietStreamWithinBound(t *testing.T) {
	const interval = time.Second // Validate allows up to 5 s
	c := loopConsumer(interval)
	in := make(chan written, 2)
	rec := &recorder{}
	done := make(chan error, 1)
	go func() { done <- c.commitLoop(in, rec.commit, func() {}) }()
	in <- written{next: tpOffsets{p0: 1}}  // the first commit of a generation: at once
	in <- written{next: tpOffsets{p0: 10}} // inside the interval: waits for its timer
	start := time.Now()
	for rec.count() < 2 {
		if time.Since(start) > interval+time.Second {
			t.Fatalf("%d commits %s after the last batch; want 2 within the interval", rec.count(), time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := rec.commits[1]["events"][0]; got != 10 {
		t.Errorf("second commit %d, want 10", got)
	}
}

// TestCommitterFinalCommitError: a commit that fails at the end of the
// generation is the loop's result (Run returns it at shutdown); before,
// the loop's result was dropped and a failed final commit went unreported.
func TestCommitterFinalCommitError(t *testing.T) {
	c := loopConsumer(time.Hour) // nothing due before the end
	in := make(chan written, 2)
	refused := errors.New("coordinator not available")
	rec := &recorder{fail: refused, failAfter: 1}
	halted := false
	in <- written{next: tpOffsets{p0: 1}} // committed at once: the first
	in <- written{next: tpOffsets{p0: 2}} // pending until the end
	close(in)
	err := c.commitLoop(in, rec.commit, func() { halted = true })
	if !errors.Is(err, refused) {
		t.Fatalf("commitLoop = %v, want the final commit's error", err)
	}
	if !halted {
		t.Error("a refused commit did not halt the generation")
	}
}

// TestCommitterDeadLetterErrorLeavesUncommitted: a dead-letter write that
// did not finish (the drain ended) commits what came before it, nothing
// from its batch on, and is the loop's result.
func TestCommitterDeadLetterErrorLeavesUncommitted(t *testing.T) {
	c := loopConsumer(time.Hour)
	in := make(chan written, 3)
	rec := &recorder{}
	dl := make(chan dlqResult, 1)
	unfinished := errors.New("dead-letter: broker unreachable")
	dl <- dlqResult{err: unfinished}
	in <- written{next: tpOffsets{p0: 5}}
	in <- written{next: tpOffsets{p1: 5}} // coalesced with the next
	in <- written{next: tpOffsets{p0: 9, p1: 9}, dlq: dl}
	close(in)
	err := c.commitLoop(in, rec.commit, func() {})
	if !errors.Is(err, unfinished) {
		t.Fatalf("commitLoop = %v, want the dead-letter error", err)
	}
	got := map[string]map[int]int64{}
	for _, offs := range rec.commits {
		for topic, parts := range offs {
			if got[topic] == nil {
				got[topic] = map[int]int64{}
			}
			maps.Copy(got[topic], parts)
		}
	}
	if want := offsetsOf(tpOffsets{p0: 5, p1: 5}); !reflect.DeepEqual(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
}

// TestCommitterLagKeptAcrossGenerations: at a new generation the lag
// series of partitions still assigned stay (a stopped partition's lag
// must not vanish at a rebalance); those of partitions gone are dropped.
func TestCommitterLagKeptAcrossGenerations(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := &lagGauges{vec: NewMetrics(reg).consumerLag, set: map[topicPartition]bool{}}
	l.update(tpOffsets{p0: 16, p1: 0})
	l.keep(map[topicPartition]bool{p0: true, q0: true})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "profiled_consumer_lag_records" {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetValue() + "/"
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	if want := map[string]float64{"0/events/": 16}; !reflect.DeepEqual(got, want) {
		t.Fatalf("lag series %v, want %v", got, want)
	}
}
