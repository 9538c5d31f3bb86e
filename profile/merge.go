package profile

import (
	"sort"
	"strings"
)

// Stamped is a field value with the event time that wrote it.
type Stamped struct {
	Value string
	Time  int64
}

// wins reports whether a replaces b under last-writer-wins: the later time
// wins, and on equal times the value greater in byte order.
func (a Stamped) wins(b Stamped) bool {
	if a.Time != b.Time {
		return a.Time > b.Time
	}
	return a.Value > b.Value
}

// Seen is a first_seen or last_seen candidate. The zero value means none.
type Seen struct {
	Time    int64
	Channel string
}

// IsZero reports whether no launch or visit has been seen.
func (s Seen) IsZero() bool { return s.Channel == "" }

// Count is one launch or visit occurrence: the sink counts it unless the
// same record (Source, Offset) or the same MessageID was applied already.
type Count struct {
	Kind      Kind
	Source    string // identifies the ordered log the record came from
	Offset    int64
	MessageID string
}

// Update is the fold of a set of events for one profile. Its state part
// (Fields, First, Last) is a join-semilattice: Merge is commutative,
// associative and idempotent, so any grouping and order of the same events
// gives the same Update. Counts are kept as the occurrences themselves,
// because whether an occurrence counts depends on what the store saw before.
type Update struct {
	ProfileID string
	Fields    map[string]Stamped
	First     Seen
	Last      Seen
	Counts    []Count
	// Links are the anonymous ids (without "anon:") that the update's
	// events link to ProfileID, a user id, each once, in the order the
	// events came (contract section 2a).
	Links []string
	// Events is the number of events folded into the update.
	Events int

	linkSet map[string]struct{} // Links as a set, once there are many
}

// AnonPrefix starts the profile id of an anonymous visitor.
const AnonPrefix = "anon:"

// AnonID returns the anonymous id of an anonymous profile id, and whether
// id is one.
func AnonID(profileID string) (string, bool) {
	if strings.HasPrefix(profileID, AnonPrefix) {
		return profileID[len(AnonPrefix):], true
	}
	return "", false
}

// Empty reports whether applying u changes no profile field, time or
// counter: an update made only of links (an alias) creates no profile.
func (u *Update) Empty() bool {
	return len(u.Fields) == 0 && u.First.IsZero() && len(u.Counts) == 0
}

// NewUpdate returns an empty Update for a profile.
func NewUpdate(id string) *Update {
	return &Update{ProfileID: id, Fields: make(map[string]Stamped, 8)}
}

// Add folds one accepted event into u. src and offset locate the record in
// its log, so that a redelivered record is recognised.
func (u *Update) Add(e Event, src string, offset int64) {
	u.Events++
	if e.LinkAnonID != "" {
		u.link(e.LinkAnonID)
	}
	traits := false
	for _, f := range e.Fields {
		u.setField(f.Name, Stamped{f.Value, e.Time})
		traits = traits || strings.HasPrefix(f.Name, TraitPrefix)
	}
	if ch := e.Kind.Channel(); ch != "" {
		u.see(Seen{e.Time, ch})
		u.Counts = append(u.Counts, Count{Kind: e.Kind, Source: src, Offset: offset, MessageID: e.MessageID})
	}
	// only a new trait can push the count past the limit; scanning every
	// field of the update after each event would sit on the hot path
	if traits {
		u.trimTraits()
	}
}

// Merge folds o's state into u (counts are appended).
func (u *Update) Merge(o *Update) {
	for name, s := range o.Fields {
		u.setField(name, s)
	}
	if !o.First.IsZero() {
		u.see(o.First)
	}
	if !o.Last.IsZero() {
		u.see(o.Last)
	}
	u.Counts = append(u.Counts, o.Counts...)
	for _, a := range o.Links {
		u.link(a)
	}
	u.Events += o.Events
	u.trimTraits()
}

func (u *Update) link(anonID string) {
	if u.linkSet != nil {
		if _, ok := u.linkSet[anonID]; ok {
			return
		}
		u.linkSet[anonID] = struct{}{}
	} else {
		for _, a := range u.Links {
			if a == anonID {
				return
			}
		}
		if len(u.Links) >= 16 { // a shared or junk user id: stay linear
			u.linkSet = make(map[string]struct{}, 2*len(u.Links))
			for _, a := range u.Links {
				u.linkSet[a] = struct{}{}
			}
			u.linkSet[anonID] = struct{}{}
		}
	}
	u.Links = append(u.Links, anonID)
}

func (u *Update) setField(name string, s Stamped) {
	if u.Fields == nil {
		u.Fields = make(map[string]Stamped, 8)
	}
	if cur, ok := u.Fields[name]; !ok || s.wins(cur) {
		u.Fields[name] = s
	}
}

// see moves first and last seen. On equal times the channel greater in
// byte order wins, at both ends.
func (u *Update) see(s Seen) {
	if u.First.IsZero() || s.Time < u.First.Time || (s.Time == u.First.Time && s.Channel > u.First.Channel) {
		u.First = s
	}
	if u.Last.IsZero() || s.Time > u.Last.Time || (s.Time == u.Last.Time && s.Channel > u.Last.Channel) {
		u.Last = s
	}
}

// trimTraits keeps the MaxTraits smallest custom trait keys. Keeping the
// smallest keys of a union is order-independent, so trimming early is safe.
func (u *Update) trimTraits() {
	n := 0
	for name := range u.Fields {
		if strings.HasPrefix(name, TraitPrefix) {
			n++
		}
	}
	if n <= MaxTraits {
		return
	}
	keys := make([]string, 0, n)
	for name := range u.Fields {
		if strings.HasPrefix(name, TraitPrefix) {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	for _, k := range keys[MaxTraits:] {
		delete(u.Fields, k)
	}
}

// FieldNames returns the names of u's fields in byte order.
func (u *Update) FieldNames() []string {
	names := make([]string, 0, len(u.Fields))
	for n := range u.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
