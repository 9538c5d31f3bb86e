package consumer_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/profiled/profiled/internal/storetest"
	"github.com/profiled/profiled/profile"
)

// fakeStore is a Store in memory: the merge rules of the contract without
// Redis, so consumer tests can watch what was written and make the store
// fail at will. It keeps messageIds for good (no window).
type fakeStore struct {
	mu       sync.Mutex
	profiles map[string]*fakeProfile
	fail     error // every Apply returns it while set
	applies  int   // Apply calls that wrote
}

type fakeProfile struct {
	fields     map[string]profile.Stamped
	first      profile.Seen
	last       profile.Seen
	launches   int
	visits     int
	watermarks map[string]int64
	mids       map[string]bool
	created    string
	updated    string
}

func newFakeStore() *fakeStore { return &fakeStore{profiles: map[string]*fakeProfile{}} }

// setFail makes every Apply fail with err until it is called with nil.
func (s *fakeStore) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

// Apply writes every update, or none when the store fails or ctx ended.
func (s *fakeStore) Apply(ctx context.Context, updates []*profile.Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.applies++
	now := profile.FormatTime(time.Now().UnixMilli())
	for _, u := range updates {
		p, ok := s.profiles[u.ProfileID]
		if !ok {
			p = &fakeProfile{fields: map[string]profile.Stamped{}, watermarks: map[string]int64{}, mids: map[string]bool{}, created: now}
			s.profiles[u.ProfileID] = p
		}
		merged := profile.NewUpdate(u.ProfileID)
		merged.Fields, merged.First, merged.Last = maps.Clone(p.fields), p.first, p.last
		merged.Merge(&profile.Update{Fields: u.Fields, First: u.First, Last: u.Last})
		p.fields, p.first, p.last = merged.Fields, merged.First, merged.Last
		for _, c := range u.Counts {
			if wm, ok := p.watermarks[c.Source]; ok && c.Offset <= wm {
				continue
			}
			p.watermarks[c.Source] = c.Offset
			if c.MessageID != "" {
				if p.mids[c.MessageID] {
					continue
				}
				p.mids[c.MessageID] = true
			}
			if c.Kind == profile.KindAppLaunch {
				p.launches++
			} else {
				p.visits++
			}
		}
		p.updated = now
	}
	return nil
}

// Ping fails while the store fails.
func (s *fakeStore) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return errors.New("fake store: " + s.fail.Error())
	}
	return nil
}

// hash returns profile id as the Redis sink would store it.
func (s *fakeStore) hash(_ context.Context, id string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.profiles[id]
	if !ok {
		return map[string]string{}, nil
	}
	h := map[string]string{
		profile.FieldAppLaunches: strconv.Itoa(p.launches), profile.FieldWebVisits: strconv.Itoa(p.visits),
		profile.FieldCreatedAt: p.created, profile.FieldUpdatedAt: p.updated,
	}
	for name, f := range p.fields {
		h[name] = f.Value
	}
	if !p.first.IsZero() {
		h[profile.FieldFirstSeen], h[profile.FieldFirstSeenChannel] = profile.FormatTime(p.first.Time), p.first.Channel
		h[profile.FieldLastSeen], h[profile.FieldLastSeenChannel] = profile.FormatTime(p.last.Time), p.last.Channel
	}
	return h, nil
}

// field reads one field of a profile ("" when absent).
func (s *fakeStore) field(id, name string) string {
	h, _ := s.hash(context.Background(), id)
	return h[name]
}

// TestFakeStoreContract: the fake keeps the Store contract, so what the
// consumer tests see through it holds for any store that passes the same
// suite (the Redis sink runs it too).
func TestFakeStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) (storetest.Store, storetest.Read) {
		s := newFakeStore()
		return s, s.hash
	})
}
