package faults_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The reference model: what the contract (sections 2-5) says every profile
// and every link holds once every record of the stream was consumed,
// computed from the generated events alone. It shares no code with the
// product's decoder or merge, so that the two can disagree.

// Defaults of PROFILED_MAX_LINKED_IDS and PROFILED_MAX_DEDUPE_IDS: a
// regular stream stays below both.
const (
	maxLinked    = 100
	maxDedupeIDs = 10000
)

// linkSet is what the applied records link (contract section 2a).
type linkSet struct {
	owner     map[string]string // anonymous id (without "anon:") -> user id
	conflicts []string          // links of an anonymous id another user owns
	refused   []string          // links refused by the limit
}

// learnLinks reads the links from the applied records only: a launch,
// visit or identify with a usable userId and anonymousId, or an alias with
// a usable userId and previousId. Skipped and dead-lettered records link
// nothing. Outside a regular stream the first link in stream order wins,
// which is one of the outcomes the contract allows.
func learnLinks(recs []*rec) linkSet {
	ls := linkSet{owner: map[string]string{}}
	per := map[string]int{}
	for _, r := range recs {
		if r.out != applied || r.ev.user == "" || r.ev.anon == "" {
			continue
		}
		a, u := r.ev.anon, r.ev.user
		if owner, ok := ls.owner[a]; ok {
			if owner != u {
				ls.conflicts = append(ls.conflicts, fmt.Sprintf("anon:%s to %q (seq %d) is owned by %q", a, u, r.seq, owner))
			}
			continue
		}
		if per[u] >= maxLinked {
			ls.refused = append(ls.refused, fmt.Sprintf("anon:%s to %q (seq %d)", a, u, r.seq))
			continue
		}
		ls.owner[a] = u
		per[u]++
	}
	return ls
}

// regular returns why the stream is not regular (contract section 5), or
// nil: the model's figures are exact only for a regular stream. Every
// record is consumed within the dedupe window (24 h) of every other, so
// copies of a messageId always fall within it.
func regular(recs []*rec) error {
	ls := learnLinks(recs)
	var why []string
	why = append(why, ls.conflicts...)
	per := map[string]int{}
	for _, u := range ls.owner {
		per[u]++
	}
	for u, n := range per {
		if n >= maxLinked {
			why = append(why, fmt.Sprintf("user %q has %d linked anonymous ids, the limit is %d", u, n, maxLinked))
		}
	}
	for _, r := range ls.refused {
		why = append(why, "refused by the limit: "+r)
	}
	ids := map[string]map[string]bool{}
	for _, r := range recs {
		if r.out != applied || r.ev.msgID == "" || r.ev.kind == "alias" {
			continue
		}
		p := person(r.ev, ls.owner)
		if ids[p] == nil {
			ids[p] = map[string]bool{}
		}
		ids[p][r.ev.msgID] = true
	}
	for p, m := range ids {
		if len(m) > maxDedupeIDs {
			why = append(why, fmt.Sprintf("%q has %d messageIds, above the dedupe memory of %d", p, len(m), maxDedupeIDs))
		}
	}
	if len(why) == 0 {
		return nil
	}
	slices.Sort(why)
	if len(why) > 10 {
		why = append(why[:10], fmt.Sprintf("and %d more", len(why)-10))
	}
	return errors.New("stream not regular: " + strings.Join(why, "; "))
}

// person returns the profile an event counts in: the user an anonymous id
// is linked to, else the profile id the event names.
func person(e *event, owner map[string]string) string {
	if e.user == "" {
		if u := owner[e.anon]; u != "" {
			return u
		}
	}
	return e.id
}

// stamp is a field value with the event time that set it.
type stamp struct {
	value string
	ms    int64
}

// beats reports whether a replaces b: the later event time wins, and on
// equal times (to the millisecond) the value greater in byte order. The
// coordinates are one value, a pair: latitude first, then longitude.
func (a stamp) beats(b stamp, name string) bool {
	if a.ms != b.ms {
		return a.ms > b.ms
	}
	if name == "coordinates" {
		alat, alon, _ := strings.Cut(a.value, ",")
		blat, blon, _ := strings.Cut(b.value, ",")
		if alat != blat {
			return alat > blat
		}
		return alon > blon
	}
	return a.value > b.value
}

// seen is a first_seen or last_seen: a time and a channel ("" for none).
type seen struct {
	ms      int64
	channel string
}

// want is the expected state of one profile.
type want struct {
	fields           map[string]stamp
	first, last      seen
	launches, visits int
	msgs             map[string]bool // messageIds of the launches and visits counted
	events           int             // records applied to it, its anonymous ids' included
}

// model folds the applied records of the stream into the expected profiles,
// one per person, and returns them with the links (anonymous id -> user).
// An event of a linked anonymous id counts in its user's profile exactly as
// if it carried the user id, wherever it comes in the stream: so it also
// sets customer_id, and no profile anon:A exists for a linked A. An alias
// only links: it sets nothing and creates no profile, so a user whose only
// records are aliases has none unless its anonymous ids had events.
func model(recs []*rec) (map[string]*want, map[string]string) {
	links := learnLinks(recs).owner
	out := map[string]*want{}
	for _, r := range recs {
		if r.out != applied || r.ev.kind == "alias" {
			continue
		}
		e := r.ev
		id, fields := person(e, links), e.fields
		if id != e.id {
			fields = append(slices.Clip(fields), fv{"customer_id", id})
		}
		w := out[id]
		if w == nil {
			w = &want{fields: map[string]stamp{}, msgs: map[string]bool{}}
			out[id] = w
		}
		w.events++
		// an event that lacks a field never erases it
		for _, f := range fields {
			s := stamp{f.value, e.ms}
			if cur, ok := w.fields[f.name]; !ok || s.beats(cur, f.name) {
				w.fields[f.name] = s
			}
		}
		if e.kind == "identify" { // sets traits; does not move first/last seen or count
			continue
		}
		ch := map[string]string{"app": "app", "web": "web"}[e.kind]
		if w.first.channel == "" || e.ms < w.first.ms || (e.ms == w.first.ms && ch > w.first.channel) {
			w.first = seen{e.ms, ch}
		}
		if w.last.channel == "" || e.ms > w.last.ms || (e.ms == w.last.ms && ch > w.last.channel) {
			w.last = seen{e.ms, ch}
		}
		// every record is processed within the dedupe window (24 h), so a
		// messageId counts once per person (under A and under U alike);
		// records without one always count
		if e.msgID != "" {
			if w.msgs[e.msgID] {
				continue
			}
			w.msgs[e.msgID] = true
		}
		if e.kind == "app" {
			w.launches++
		} else {
			w.visits++
		}
	}
	return out, links
}

// contractTime is the contract's time format: RFC 3339, UTC, milliseconds.
func contractTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// hash is the profile hash the contract demands, without the wall-clock
// fields created_at and updated_at.
func (w *want) hash() map[string]string {
	h := map[string]string{}
	for name, s := range w.fields {
		if name == "coordinates" {
			h["latitude"], h["longitude"], _ = strings.Cut(s.value, ",")
			continue
		}
		h[name] = s.value
	}
	if w.first.channel != "" {
		h["first_seen"], h["first_seen_channel"] = contractTime(w.first.ms), w.first.channel
		h["last_seen"], h["last_seen_channel"] = contractTime(w.last.ms), w.last.channel
	}
	h["app_launches"] = strconv.Itoa(w.launches)
	h["web_visits"] = strconv.Itoa(w.visits)
	return h
}

// rawID reads an id sent as the bytes of a JSON string without escapes
// (contract section 2): usable when its bytes are valid UTF-8 as sent, and,
// trimmed, non-empty, at most 256 bytes, free of braces and control
// characters. It never repairs: bytes that are not UTF-8 make no id. The
// hostile generator sends no junk value and no number this way, so those
// rules are not needed here.
func rawID(raw string) (string, bool) {
	if !utf8.ValidString(raw) {
		return "", false
	}
	id := strings.TrimSpace(raw)
	if id == "" || len(id) > 256 || strings.ContainsFunc(id, func(r rune) bool { return r == '{' || r == '}' || unicode.IsControl(r) }) {
		return "", false
	}
	return id, true
}

// readIDs reads a record's raw userId and anonymousId (an alias: its
// previousId; "" when absent): the usable ids ("" for one that is not),
// and whether the record names someone. A launch, visit or identify needs
// one usable id, an alias both; a userId never starts with "anon:".
func readIDs(rawUser, rawAnon string, alias bool) (user, anon string, ok bool) {
	user, uok := rawID(rawUser)
	if strings.HasPrefix(user, "anon:") {
		user, uok = "", false
	}
	anon, aok := rawID(rawAnon)
	if alias {
		return user, anon, uok && aok
	}
	return user, anon, uok || aok
}

// readMessageID reads a messageId sent as raw string bytes: one that is
// not valid UTF-8 counts as absent (README, the contract in brief), so
// that two different ones are never read as one.
func readMessageID(raw string) string {
	if !utf8.ValidString(raw) {
		return ""
	}
	return strings.TrimSpace(raw)
}

// letterHeaders returns the producer's headers as the dead letter of r
// must carry them, in order (contract section 7): the suite's seqHeader
// and r's own, each under a "profiled." name renamed
// "profiled.original.<rest>", so that every other profiled.* header of the
// letter is profiled's own.
func letterHeaders(r *rec) []header {
	hs := []header{{seqHeader, strconv.Itoa(r.seq)}}
	for _, h := range r.headers {
		if rest, ok := strings.CutPrefix(h.key, "profiled."); ok {
			h.key = "profiled.original." + rest
		}
		hs = append(hs, h)
	}
	return hs
}
