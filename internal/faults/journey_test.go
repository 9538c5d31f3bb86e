package faults_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Identity journeys (contract section 2a): a third of the users start as
// anonymous visitors. Their first events carry only an anonymous id A and
// are keyed by it; then one event links A to the user U (an identify or a
// launch or visit carrying both ids, or an alias), keyed by U, so that A's
// and U's records mostly land in different partitions; later events are
// U's, some carrying A again. One in twenty of A's anonymous events is held
// back and sent after the link; now and then an anonymous launch or visit
// is sent again after the link under U with the same messageId (it counts
// once: dedupe is per person). A fifth of these users get a second device,
// another anonymous id linked to the same U. Every anonymous id of a
// journey belongs to one user only, so the stream stays regular.

// journey is the state of one user who started anonymous.
type journey struct {
	u       int
	devices []string // anonymous ids, in the order the user got them
	linked  int      // devices[:linked] have had their linking event
	before  int      // anonymous events the current device sends before its link
	twice   bool     // the user gets a second device
	copies  []sent   // anonymous launches and visits with a messageId
}

// sent is a record and the value it was made from.
type sent struct {
	r *rec
	m map[string]any
}

// heldEvent is an anonymous event that arrives after its device's link.
type heldEvent struct {
	r      *rec
	j      *journey
	device int
}

// isJourney reports whether user u starts anonymous: a third of the users
// who are not visitors who never sign in (u%7 == 0).
func isJourney(u int) bool { return u%3 == 1 && u%7 != 0 }

// journeyOf returns u's journey, or nil when u does not start anonymous.
func (g *generator) journeyOf(u int) *journey {
	if !isJourney(u) {
		return nil
	}
	j := g.journeys[u]
	if j == nil {
		j = &journey{u: u, devices: []string{fmt.Sprintf("j-%d-0", u)}, before: 1 + g.rng.IntN(4), twice: u%5 == 2}
		g.journeys[u] = j
	}
	return j
}

// step adds the journey's next record.
func (j *journey) step(g *generator) {
	if j.linked < len(j.devices) { // the current device is still anonymous
		if j.before > 0 {
			j.before--
			g.anonymous(j)
			return
		}
		g.link(j)
		return
	}
	switch {
	case j.twice && len(j.devices) == 1 && g.rng.IntN(4) == 0:
		j.devices = append(j.devices, fmt.Sprintf("j-%d-1", j.u))
		j.before = g.rng.IntN(3)
		g.anonymous(j)
	case len(j.copies) > 0 && g.rng.IntN(12) == 0:
		g.copyAcross(j)
	default:
		g.signedIn(j)
	}
}

// anonymous adds (or holds back) an event that carries only the current
// device's anonymous id, sometimes beside an unusable userId.
func (g *generator) anonymous(j *journey) {
	d := len(j.devices) - 1
	a := j.devices[d]
	m := map[string]any{"anonymousId": g.pad(a)}
	if g.rng.IntN(8) == 0 {
		m["userId"] = g.pick("", "null", "undefined")
	}
	ev := &event{kind: g.kind(m), id: "anon:" + a, anon: a, fields: []fv{{"anonymous_id", a}}}
	r := g.finish(j.u, m, ev)
	if ev.kind != "identify" && ev.msgID != "" {
		j.copies = append(j.copies, sent{r, m})
	}
	if g.rng.IntN(20) == 0 {
		r.late = true
		g.held = append(g.held, &heldEvent{r: r, j: j, device: d})
		return
	}
	g.add(r)
}

// link adds the event that links the current device to the user: an
// identify or a launch or visit with both ids, or an alias.
func (g *generator) link(j *journey) {
	a := j.devices[j.linked]
	j.linked++
	id, wrote := g.userID(j.u)
	if g.rng.IntN(10) < 3 {
		m := map[string]any{"type": "alias", "userId": wrote, "previousId": g.pad(a)}
		if g.rng.IntN(2) == 0 { // Segment's alias carries the anonymous id too
			m["anonymousId"] = a
		}
		if g.rng.IntN(10) > 0 {
			m["messageId"] = g.newMsgID() // never reused: an alias counts nothing
		}
		ts := g.placeTime(m, g.eventTime(j.u))
		g.add(&rec{key: g.key(&event{user: id}), value: marshal(m), ts: ts, out: applied,
			ev: &event{kind: "alias", id: id, user: id, anon: a}})
		return
	}
	m := map[string]any{"userId": wrote, "anonymousId": g.pad(a)}
	kind := "identify"
	if g.rng.IntN(2) == 0 {
		kind = g.kind(m)
	} else {
		m["type"] = "identify"
	}
	ev := &event{kind: kind, id: id, user: id, anon: a, fields: []fv{{"customer_id", id}, {"anonymous_id", a}}}
	g.add(g.finish(j.u, m, ev))
}

// signedIn adds an event of the user after a link: with one of its linked
// anonymous ids (mostly the latest), an unusable one, or none.
func (g *generator) signedIn(j *journey) {
	id, wrote := g.userID(j.u)
	m := map[string]any{"userId": wrote}
	ev := &event{kind: g.kind(m), id: id, user: id, fields: []fv{{"customer_id", id}}}
	switch r := g.rng.IntN(10); {
	case r < 4:
		a := j.devices[j.linked-1]
		if g.rng.IntN(4) == 0 {
			a = j.devices[g.rng.IntN(j.linked)]
		}
		m["anonymousId"] = g.pad(a)
		ev.anon = a
		ev.fields = append(ev.fields, fv{"anonymous_id", a})
	case r < 5:
		m["anonymousId"] = g.junkID(false)
	}
	g.add(g.finish(j.u, m, ev))
}

// copyAcross sends an anonymous launch or visit again after the link, as a
// new record with the same messageId, time and fields, now carrying the
// user id (and, half the time, no anonymous id), keyed by the user id.
func (g *generator) copyAcross(j *journey) {
	k := g.rng.IntN(len(j.copies))
	c := j.copies[k]
	j.copies = slices.Delete(j.copies, k, k+1)
	id, wrote := g.userID(j.u)
	m := maps.Clone(c.m)
	m["userId"] = wrote
	ev := *c.r.ev
	ev.id, ev.user = id, id
	ev.fields = []fv{{"customer_id", id}}
	for _, f := range c.r.ev.fields {
		if f.name != "anonymous_id" {
			ev.fields = append(ev.fields, f)
		}
	}
	if g.rng.IntN(2) == 0 {
		delete(m, "anonymousId")
		ev.anon = ""
	} else {
		ev.fields = append(ev.fields, fv{"anonymous_id", ev.anon})
	}
	g.add(&rec{key: []byte(id), value: marshal(m), ts: c.r.ts, out: applied, ev: &ev, across: true})
}

// aliasOnly adds an alias of an anonymous id that has no event, by a user
// who has none either: the link is data, but no profile comes of it. Now
// and then the anonymous id also sends a kind profiled skips, which
// creates nothing either.
func (g *generator) aliasOnly() {
	n := len(g.s.recs)
	u, a := fmt.Sprintf("ua-%d", n), fmt.Sprintf("za-%d", n)
	if g.rng.IntN(3) == 0 {
		m := map[string]any{"type": "screen", "name": "Home", "anonymousId": a, "timestamp": g.timeText(g.eventTime(n))}
		g.add(&rec{key: []byte(a), value: marshal(m), ts: g.now, out: skipped})
	}
	m := map[string]any{"type": "alias", "userId": u, "previousId": a, "messageId": g.newMsgID()}
	ts := g.placeTime(m, g.eventTime(n))
	g.add(&rec{key: []byte(u), value: marshal(m), ts: ts, out: applied, ev: &event{kind: "alias", id: u, user: u, anon: a}})
}

// release adds one held-back anonymous event whose device is linked by
// now; it reports whether there was one.
func (g *generator) release() bool {
	for i, h := range g.held {
		if h.device < h.j.linked {
			g.held = slices.Delete(g.held, i, i+1)
			g.add(h.r)
			return true
		}
	}
	return false
}

// journeyStats counts what the stream holds of identity journeys.
type journeyStats struct {
	anonymous int // anonymous events of anonymous ids that end up linked
	late      int // of them, sent after the link
	aliases   int // applied alias records
	across    int // messageId copies of anonymous events under the user id
	linked    int // anonymous ids linked to a user
	users     int // users with a linked anonymous id
	devices2  int // users with two or more linked anonymous ids of a journey
}

func (s *stream) journeys() journeyStats {
	var st journeyStats
	links := learnLinks(s.recs).owner
	devices := map[string]int{} // user -> anonymous ids of journeys linked to it
	for a, u := range links {
		st.linked++
		if strings.HasPrefix(a, "j-") {
			devices[u]++
		} else {
			devices[u] += 0
		}
	}
	st.users = len(devices)
	for _, n := range devices {
		if n > 1 {
			st.devices2++
		}
	}
	for _, r := range s.recs {
		if r.out != applied || r.dup {
			continue
		}
		switch {
		case r.ev.kind == "alias":
			st.aliases++
		case r.across:
			st.across++
		case r.ev.user == "" && links[r.ev.anon] != "":
			st.anonymous++
			if r.late {
				st.late++
			}
		}
	}
	return st
}
