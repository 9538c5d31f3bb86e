package consumer

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/profiled/profiled/profile"
)

type laneFeed struct {
	t    *testing.T
	l    *lanes
	dec  *profile.Decoder
	ids  *topicIDs
	next map[int]int64
}

func newLaneFeed(t *testing.T, size int) *laneFeed {
	dec, err := profile.NewDecoder(profile.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &laneFeed{t: t, l: newLanes(size), dec: dec, ids: &topicIDs{ids: map[string]string{"events": "id"}}, next: map[int]int64{}}
}

// add feeds the next record of partition p; lag is how many more records
// the broker held after it. Every tenth record is malformed.
func (f *laneFeed) add(p int, lag int64) {
	off := f.next[p]
	f.next[p]++
	v := fmt.Sprintf(`{"type":"page","userId":"u%d-%d","messageId":"m%d-%d"}`, p, off%3, p, off)
	if off%10 == 9 {
		v = "not json"
	}
	f.l.add(f.dec, f.ids, kafka.Message{Topic: "events", Partition: p, Offset: off, HighWaterMark: off + 1 + lag, Time: time.Now(), Value: []byte(v)})
}

// check: the batch holds each partition's records in offset order, from
// where the last batch of that partition ended, with its dead letters
// and folded updates in step.
func (f *laneFeed) check(b *batch, seen map[int]int64) {
	f.t.Helper()
	counts, dead := 0, 0
	for r := range b.recs.all() {
		p := r.msg.Partition
		if r.msg.Offset != seen[p] {
			f.t.Fatalf("partition %d: offset %d, want %d", p, r.msg.Offset, seen[p])
		}
		seen[p]++
		if r.dead != (r.msg.Offset%10 == 9) {
			f.t.Fatalf("record %d/%d: dead %v", p, r.msg.Offset, r.dead)
		}
		if r.dead {
			if d := b.dead[dead].msg; d.Partition != p || d.Offset != r.msg.Offset {
				f.t.Fatalf("record %d/%d: dead letter %d is %d/%d", p, r.msg.Offset, dead, d.Partition, d.Offset)
			}
			dead++
		} else {
			counts++
		}
	}
	if dead != len(b.dead) {
		f.t.Fatalf("%d dead letters, %d records rejected", len(b.dead), dead)
	}
	n := 0
	for _, u := range b.order {
		n += len(u.Counts)
	}
	if n != counts {
		f.t.Fatalf("updates hold %d counts, the batch %d records to apply", n, counts)
	}
}

// TestLanesFullLaneOfOnePartition: under a backlog (every partition
// behind) a batch is one partition's records, as many as the bound; no
// lane is due before it is full.
func TestLanesFullLaneOfOnePartition(t *testing.T) {
	f := newLaneFeed(t, 20)
	seen := map[int]int64{}
	for i := 0; !f.l.full(); i++ {
		f.add(i%3, 1000)
	}
	if f.l.anyDue(time.Now()) != true || len(f.l.open) != 2 {
		t.Fatalf("open lanes %d", len(f.l.open))
	}
	b := f.l.take(time.Now())
	if b.recs.len() != 20 || len(b.info().Ranges) != 1 || b.recs.at(0).msg.Partition != 0 {
		t.Fatalf("batch of %d records, ranges %v", b.recs.len(), b.info().Ranges)
	}
	f.check(b, seen)
	// the other lanes are behind and young: not due
	if f.l.anyDue(time.Now()) || f.l.take(time.Now()) != nil {
		t.Fatal("a partial lane of a partition behind was due")
	}
	// until they waited laneWait; together they exceed the bound: one
	// lane at a time
	for _, p := range []int{1, 2} {
		b := f.l.take(time.Now().Add(laneWait))
		if b == nil || b.recs.len() != 19 || b.recs.at(0).msg.Partition != p {
			t.Fatalf("after laneWait: want partition %d's 19 records", p)
		}
		f.check(b, seen)
	}
	if !f.l.empty() {
		t.Fatal("records left")
	}
}

// TestLanesMergeWhenCaughtUp: partitions that are caught up go to the
// writer together, one batch, as long as they fit the bound; the fullest
// alone when they do not.
func TestLanesMergeWhenCaughtUp(t *testing.T) {
	f := newLaneFeed(t, 20)
	seen := map[int]int64{}
	for i := range 12 {
		f.add(i%4, 0)
	}
	b := f.l.take(time.Now())
	if b.recs.len() != 12 || len(b.info().Ranges) != 4 || !f.l.empty() {
		t.Fatalf("batch of %d records in %d ranges", b.recs.len(), len(b.info().Ranges))
	}
	f.check(b, seen)
	for i := range 25 {
		f.add(i%4, 0) // 7, 6, 6, 6
	}
	b = f.l.take(time.Now())
	if b.recs.len() != 7 || b.recs.at(0).msg.Partition != 0 {
		t.Fatalf("batch of %d records of partition %d, want the fullest lane", b.recs.len(), b.recs.at(0).msg.Partition)
	}
	f.check(b, seen)
	b = f.l.take(time.Now())
	f.check(b, seen)
	if b.recs.len() != 18 || !f.l.empty() {
		t.Fatalf("batch of %d records, want the other 18", b.recs.len())
	}
}

// TestLanesLimitBoundsMemory: with many partitions none of which fills a
// lane, the open lanes never hold more than laneLimit bounds: the fullest
// goes first.
func TestLanesLimitBoundsMemory(t *testing.T) {
	f := newLaneFeed(t, 10)
	seen := map[int]int64{}
	for i := range 200 {
		f.add(i%50, 1000)
		if f.l.held >= laneLimit*10 {
			t.Fatalf("open lanes hold %d records", f.l.held)
		}
		if f.l.full() {
			b := f.l.take(time.Now())
			f.check(b, seen)
		}
	}
	for _, b := range f.l.rest() {
		f.check(b, seen)
	}
	for p := range 50 {
		if seen[p] != f.next[p] {
			t.Fatalf("partition %d: %d records handed on, %d added", p, seen[p], f.next[p])
		}
	}
}

// TestLanesRestKeepsOrder: at the end of a generation the full lanes go
// before the open ones, so each partition's records stay in order.
func TestLanesRestKeepsOrder(t *testing.T) {
	f := newLaneFeed(t, 5)
	seen := map[int]int64{}
	for i := range 23 {
		f.add(i%2, 1000)
		if i == 10 {
			// a full lane waits: the collector stops taking records; go on
			// regardless to get a second lane of that partition
			if !f.l.full() {
				t.Fatal("no full lane")
			}
		}
	}
	for _, b := range f.l.rest() {
		f.check(b, seen)
	}
	if seen[0] != f.next[0] || seen[1] != f.next[1] || !f.l.empty() {
		t.Fatalf("handed on %v, added %v", seen, f.next)
	}
}

// TestLanesQuietPartitionNotStarved: while one partition's backlog fills
// lane after lane, a caught-up partition's lane that waited laneWait goes
// first, and never before a full lane of its own.
func TestLanesQuietPartitionNotStarved(t *testing.T) {
	f := newLaneFeed(t, 10)
	seen := map[int]int64{}
	f.add(1, 0) // a quiet partition, caught up
	for !f.l.full() {
		f.add(0, 1000)
	}
	if b := f.l.take(time.Now()); b.recs.at(0).msg.Partition != 0 {
		t.Fatal("the full lane did not go first")
	} else {
		f.check(b, seen)
	}
	for !f.l.full() {
		f.add(0, 1000)
	}
	b := f.l.take(time.Now().Add(laneWait))
	if b.recs.len() != 1 || b.recs.at(0).msg.Partition != 1 {
		t.Fatalf("after laneWait: a batch of %d records of partition %d, want the quiet one", b.recs.len(), b.recs.at(0).msg.Partition)
	}
	f.check(b, seen)
	f.check(f.l.take(time.Now()), seen) // partition 0's full lane
	// a lane that waited, of a partition whose full lane waits: not first
	for !f.l.full() {
		f.add(1, 1000)
	}
	f.add(1, 1000)
	b = f.l.take(time.Now().Add(time.Hour))
	if b.recs.len() != 10 || b.recs.at(0).msg.Partition != 1 {
		t.Fatalf("%d records of partition %d first, want 1's full lane", b.recs.len(), b.recs.at(0).msg.Partition)
	}
	f.check(b, seen)
	for _, b := range f.l.rest() {
		f.check(b, seen)
	}
}

// TestLanesBehindLaneWaitsLonger: under a backlog every partition is
// behind; a lane of a partition that is behind does not go ahead of
// another partition's full lane at laneWait (it fills soon, and a full
// lane folds best), only at behindWait (a stalled fetch).
func TestLanesBehindLaneWaitsLonger(t *testing.T) {
	f := newLaneFeed(t, 10)
	seen := map[int]int64{}
	f.add(1, 1000) // behind: the broker holds more of partition 1
	f.fill(0)
	f.want(f.l.take(time.Now().Add(laneWait)), 10, 0, seen)
	f.fill(0)
	f.want(f.l.take(time.Now().Add(behindWait)), 1, 1, seen)
	for _, b := range f.l.rest() {
		f.check(b, seen)
	}
}

// fill adds records of partition p, behind, until a lane is full.
func (f *laneFeed) fill(p int) {
	for !f.l.full() {
		f.add(p, 1000)
	}
}

// want checks that b is n records of partition p, then checks it as
// check does.
func (f *laneFeed) want(b *batch, n, p int, seen map[int]int64) {
	f.t.Helper()
	if b == nil || b.recs.len() != n || b.recs.at(0).msg.Partition != p {
		got, part := 0, -1
		if b != nil && b.recs.len() > 0 {
			got, part = b.recs.len(), b.recs.at(0).msg.Partition
		}
		f.t.Fatalf("a batch of %d records of partition %d, want %d of partition %d", got, part, n, p)
	}
	f.check(b, seen)
}

// TestLanesMergeFoldsLikeOneBatch: lanes merged for the writer hold the
// updates that folding their records, in the merged batch's order, into
// one batch gives (a profile's records on several partitions, as when
// producers key a person's events by different ids), each update within
// maxCountsPerUpdate. The merged lanes fold no record again: their
// records no longer hold their fields.
func TestLanesMergeFoldsLikeOneBatch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perLane   []int
		users     int
		wantSplit bool
	}{
		{"small", []int{7, 5, 3}, 4, false},
		{"over the counts bound", []int{1000, 900}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newLaneFeed(t, 4000)
			values := map[[2]int64][]byte{}
			for p, n := range tc.perLane {
				for off := range n {
					var v string
					switch {
					case off%10 == 9: // as laneFeed.add, which check expects
						v = "not json"
					case off%4 == 0:
						v = fmt.Sprintf(`{"type":"identify","userId":"u%d","messageId":"m%d-%d","timestamp":"2026-01-0%dT00:00:00Z","traits":{"email":"p%d-%d@example.com","plan":"p%d"}}`,
							off%tc.users, p, off, 1+(off+p)%9, p, off, off%5)
					default:
						v = fmt.Sprintf(`{"type":"track","event":"Application Opened","userId":"u%d","anonymousId":"a%d-%d","messageId":"m%d-%d","timestamp":"2026-01-0%dT00:00:0%dZ"}`,
							off%tc.users, p, off%3, p, off, 1+(off*7+p)%9, off%10)
					}
					values[[2]int64{int64(p), int64(off)}] = []byte(v)
					f.l.add(f.dec, f.ids, kafka.Message{Topic: "events", Partition: p, Offset: int64(off), HighWaterMark: int64(off) + 1, Time: time.Now(), Value: []byte(v)})
				}
			}
			b := f.l.take(time.Now())
			total := 0
			for _, n := range tc.perLane {
				total += n
			}
			if b == nil || b.recs.len() != total {
				t.Fatalf("want every lane merged into one batch of %d records", total)
			}
			want := newBatch()
			for r := range b.recs.all() {
				p := r.msg
				want.add(f.dec, f.ids, kafka.Message{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, HighWaterMark: p.HighWaterMark,
					Value: values[[2]int64{int64(p.Partition), p.Offset}]})
			}
			if !reflect.DeepEqual(slices.Collect(b.recs.all()), slices.Collect(want.recs.all())) || len(b.dead) != len(want.dead) {
				t.Fatalf("records or dead letters differ from one batch's")
			}
			for i, d := range b.dead {
				if w := want.dead[i]; d.msg.Partition != w.msg.Partition || d.msg.Offset != w.msg.Offset || string(d.msg.Value) != string(w.msg.Value) {
					t.Fatalf("dead letter %d is %d/%d, want %d/%d", i, d.msg.Partition, d.msg.Offset, w.msg.Partition, w.msg.Offset)
				}
			}
			split := false
			for _, u := range b.order {
				if len(u.Counts) > maxCountsPerUpdate {
					t.Fatalf("%s: an update of %d counts", u.ProfileID, len(u.Counts))
				}
				split = split || b.updates[u.ProfileID] != u
			}
			if split != tc.wantSplit {
				t.Fatalf("a profile's records in several updates: %v, want %v", split, tc.wantSplit)
			}
			got, exp := joined(b), joined(want)
			if len(got) != len(exp) {
				t.Fatalf("%d profiles, want %d", len(got), len(exp))
			}
			for id, e := range exp {
				g := got[id]
				if g == nil || !reflect.DeepEqual(g.Fields, e.Fields) || g.First != e.First || g.Last != e.Last ||
					!reflect.DeepEqual(g.Counts, e.Counts) || !reflect.DeepEqual(g.Links, e.Links) || g.Events != e.Events {
					t.Fatalf("%s: merged lanes\n%+v\nwant\n%+v", id, g, e)
				}
			}
		})
	}
}

// joined merges each profile's updates of b, in order, into one.
func joined(b *batch) map[string]*profile.Update {
	out := map[string]*profile.Update{}
	for _, u := range b.order {
		if j, ok := out[u.ProfileID]; ok {
			j.Merge(u)
			continue
		}
		j := profile.NewUpdate(u.ProfileID)
		j.Merge(u)
		out[u.ProfileID] = j
	}
	return out
}
