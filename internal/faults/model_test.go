package faults_test

import (
	"strconv"
	"strings"
	"time"
)

// The reference model: what the contract (sections 2-5) says every profile
// holds once every record of the stream was consumed, computed from the
// generated events alone. It shares no code with the product's decoder or
// merge, so that the two can disagree.

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
	events           int             // records applied to it
}

// model folds the applied records of the stream into the expected profiles.
func model(recs []*rec) map[string]*want {
	out := map[string]*want{}
	for _, r := range recs {
		if r.out != applied {
			continue
		}
		e := r.ev
		w := out[e.id]
		if w == nil {
			w = &want{fields: map[string]stamp{}, msgs: map[string]bool{}}
			out[e.id] = w
		}
		w.events++
		// an event that lacks a field never erases it
		for _, f := range e.fields {
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
		// messageId counts once per profile; records without one always count
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
	return out
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
