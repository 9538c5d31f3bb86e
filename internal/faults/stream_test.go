package faults_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/profiled/profiled/profile"
)

// The stream: a seeded sequence of records as event pipelines write them,
// each with what the contract says must come of it. Field values are
// generated as the contract stores them (emails with a lowercase domain,
// phones in E.164, birthdays as YYYY-MM-DD, numbers in shortest form) and
// then written the way senders write them (padded, mixed-case domains,
// spaced phone numbers, other date forms, other number spellings), so that
// the reference model needs no phone library and no decoder of its own.

// outcome is what must happen to a record.
type outcome uint8

const (
	applied outcome = iota + 1 // a launch, visit, identify or alias that passes every check
	skipped                    // an ignored kind or a tombstone: no effect, committed
	dead                       // rejected: in the dead-letter topic with its reason
)

// The rejection reasons (contract section 7) are profile's RejectReasons:
// the contract's names of them are pinned by the e2e test
// TestEveryRejectionReachesTheDeadLetterTopic, not again here.

// rec is one produced record and its expected outcome.
type rec struct {
	seq   int
	key   []byte
	value []byte    // nil: a tombstone
	ts    time.Time // the Kafka record timestamp

	out    outcome
	reason string // dead: the rejection reason
	ev     *event // applied: what the record does to its profile

	// headers the producer sends beside the suite's seqHeader (forged
	// profiled.* names among them; see hostile_stream_test.go)
	headers []header
	// atLimit: the record is exactly as large as the broker accepts; it is
	// produced alone and never duplicated (its size depends on its key and
	// its seqHeader)
	atLimit bool

	dup bool // a producer duplicate of an earlier record
	// identity journeys: an anonymous event held back until after the
	// link of its anonymous id, and a messageId copy of an anonymous event
	// sent again under the user id after the link
	late, across bool

	// where the broker put it
	partition int32
	offset    int64
}

// event is an accepted record as the contract reads it.
type event struct {
	id     string // profile id the record names: user, else "anon:" + anonymous id
	user   string // usable userId, "" when none
	anon   string // usable anonymousId (an alias: its previousId), "" when none
	kind   string // "app", "web", "identify" or "alias"
	ms     int64  // event time, Unix milliseconds
	msgID  string // "" when the record has none
	fields []fv   // stored fields it sets ("coordinates" is the lat,lon pair)
}

type fv struct{ name, value string }

// identify sets e's profile id (its user, else anon: and its anonymous id)
// and, but for an alias, adds the id fields the record stores.
func (e *event) identify() {
	e.id = e.user
	if e.user == "" {
		e.id = "anon:" + e.anon
	}
	if e.kind == "alias" {
		return
	}
	if e.user != "" {
		e.fields = append(e.fields, fv{"customer_id", e.user})
	}
	if e.anon != "" {
		e.fields = append(e.fields, fv{"anonymous_id", e.anon})
	}
}

// stream is the generated records and the values that must never be
// stored anywhere (dropped fields).
type stream struct {
	seed  uint64
	recs  []*rec
	never map[string]bool
}

type generator struct {
	rng   *rand.Rand
	seed  uint64
	now   time.Time
	base  time.Time
	span  time.Duration
	users int
	s     *stream

	msgN     int                     // messageIds made so far
	msgsOf   map[int]map[string]bool // person -> messageIds of its records
	counts   []msgRef                // launches and visits that carry a messageId
	journeys map[int]*journey        // the users who start anonymous, once picked
	held     []*heldEvent            // anonymous events that arrive after their link
}

// msgRef is a counted messageId and the person (user number) it belongs to.
type msgRef struct {
	u     int
	msgID string
}

// generate returns n records: launches, visits and identifies over users
// (a few of them hot), with out-of-order and equal event times, 2.5%
// producer duplicates, 8% ignored kinds, a few tombstones, 1.1% of each
// rejection reason, a burst of oversized records, 0.1% hostile records
// (ids that are not valid UTF-8, forged profiled.* headers) and two records
// at the broker's size limit (see hostile_stream_test.go). A third of the users
// start anonymous and are linked later (journeys, see journey); some
// anonymous events of a linked id arrive after the link. The stream is
// regular (contract section 5): no anonymous id is linked to two users, no
// user comes near the linked-id limit.
func generate(seed uint64, n int, now time.Time) *stream {
	g := &generator{
		rng: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)), seed: seed, now: now,
		span: 20 * 24 * time.Hour, users: n / 8,
		s:        &stream{seed: seed, never: map[string]bool{}},
		msgsOf:   map[int]map[string]bool{},
		journeys: map[int]*journey{},
	}
	g.base = now.Add(-21 * 24 * time.Hour).Truncate(time.Second)
	burst := n / 3
	limitAt := []int{n / 2, n * 5 / 6} // where the records at the size limit go
	for len(g.s.recs) < n {
		if len(g.s.recs) == burst {
			g.burst()
		}
		if len(limitAt) > 0 && len(g.s.recs) >= limitAt[0] {
			limitAt = limitAt[1:]
			g.atLimitRecord()
			continue
		}
		if len(g.held) > 0 && g.rng.IntN(25) == 0 && g.release() {
			continue
		}
		switch r := g.rng.IntN(1000); {
		case r < 55: // 1.1% each, so that no reason falls below 1% by chance
			g.bad(profile.RejectReasons[r/11])
		case r < 80 && len(g.s.recs) > 100:
			g.duplicate()
		case r < 160:
			g.ignored()
		case r < 162:
			g.add(&rec{key: []byte(fmt.Sprintf("tomb-%d", len(g.s.recs))), out: skipped, ts: now})
		case r < 163:
			g.hostile()
		default:
			g.good()
		}
	}
	return g.s
}

func (g *generator) add(r *rec) {
	r.seq = len(g.s.recs)
	g.s.recs = append(g.s.recs, r)
}

func (g *generator) pick(xs ...string) string { return xs[g.rng.IntN(len(xs))] }

// pad surrounds a value with blanks now and then: senders do, and the
// contract trims identities, emails, cities and countries.
func (g *generator) pad(s string) string {
	switch g.rng.IntN(10) {
	case 0:
		return " " + s + " "
	case 1:
		return "\t" + s
	}
	return s
}

func marshal(m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// user picks a user: a tenth of the events go to 50 hot users.
func (g *generator) user() int {
	if g.rng.IntN(10) == 0 {
		return 1 + g.rng.IntN(50)
	}
	return 1 + g.rng.IntN(g.users)
}

var ist = time.FixedZone("IST", 5*3600+1800)
var est = time.FixedZone("EST", -5*3600)

// eventTime returns a millisecond time within the span; three in ten fall
// on one of three per-user seconds, so that equal times are common.
func (g *generator) eventTime(u int) time.Time {
	if g.rng.IntN(10) < 3 {
		h := uint64(u)*0x9e3779b97f4a7c15 + uint64(g.rng.IntN(3))*0xbf58476d1ce4e5b9 + g.seed
		h ^= h >> 31
		return g.base.Add(time.Duration(h%uint64(g.span/time.Second)) * time.Second)
	}
	return g.base.Add(time.Duration(g.rng.Int64N(int64(g.span/time.Millisecond))) * time.Millisecond)
}

// timeText writes t as senders do: RFC 3339 with Z or an offset, with
// milliseconds, microseconds (cut to milliseconds) or whole seconds.
func (g *generator) timeText(t time.Time) string {
	switch g.rng.IntN(10) {
	case 0:
		return t.Add(time.Duration(g.rng.IntN(1000)) * time.Microsecond).UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	case 1:
		return t.In(ist).Format("2006-01-02T15:04:05.000Z07:00")
	case 2:
		return t.In(est).Format(time.RFC3339Nano)
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// placeTime puts the event time t into m and returns the Kafka record
// timestamp to send: t itself when m carries no time, else a time that
// must not be used.
func (g *generator) placeTime(m map[string]any, t time.Time) time.Time {
	other := g.now.Add(-time.Duration(g.rng.IntN(3600)) * time.Second).Truncate(time.Millisecond)
	switch r := g.rng.IntN(20); {
	case r < 12:
		m["timestamp"] = g.timeText(t)
	case r < 14:
		m["originalTimestamp"] = g.timeText(t)
	case r < 15:
		m["timestamp"] = nil
		m["originalTimestamp"] = g.timeText(t)
	case r < 16:
		m["receivedAt"] = g.timeText(t)
	case r < 18:
		return t // the record's timestamp decides
	default: // the first present time decides; the others are never read
		m["timestamp"] = g.timeText(t)
		m["originalTimestamp"] = "not a time"
		m["receivedAt"] = "2999-01-01T00:00:00Z"
	}
	return other
}

// Junk identities: none of these names a user.
func (g *generator) junkID(forUser bool) any {
	xs := []any{nil, "null", "NULL", "undefined", "Anonymous", "guest", "None", "NaN", "0", "-1",
		"[object Object]", "000", "0000000", "", "   ", "a{b}", "x}y", "bell\u0007", "del\u007f",
		strings.Repeat("z", 257), true, 1.5, map[string]any{"id": 1}, json.Number("0"), json.Number("-1")}
	if forUser {
		xs = append(xs, "anon:someone")
	}
	return xs[g.rng.IntN(len(xs))]
}

// userID returns user u's id as the contract reads it and as a sender
// writes it: numeric ids as a JSON integer or a string, others now and
// then padded.
func (g *generator) userID(u int) (string, any) {
	if u%11 == 0 {
		id := strconv.Itoa(100000 + u)
		if g.rng.IntN(2) == 0 {
			return id, json.Number(id)
		}
		return id, id
	}
	id := fmt.Sprintf("u-%d", u)
	return id, g.pad(id)
}

// visitorAnon returns the anonymous id of a visitor who never signs in:
// records that must link nothing name one, so that a wrong link shows.
func (g *generator) visitorAnon() string {
	return fmt.Sprintf("a-%d", 7*(1+g.rng.IntN(max(g.users/7, 1))))
}

// identity writes the user's ids into m and fills the event's ids and the
// identity fields it sets.
func (g *generator) identity(u int, m map[string]any, ev *event) {
	if u%7 == 0 { // an anonymous visitor; any userId it sends is unusable
		a := fmt.Sprintf("a-%d", u)
		m["anonymousId"] = g.pad(a)
		switch g.rng.IntN(6) {
		case 0:
			m["userId"] = g.junkID(true)
		case 1:
			m["userId"] = "anon:" + a
		}
		ev.id, ev.anon, ev.fields = "anon:"+a, a, []fv{{"anonymous_id", a}}
		return
	}
	id, sent := g.userID(u)
	m["userId"] = sent
	ev.id, ev.user, ev.fields = id, id, []fv{{"customer_id", id}}
	switch g.rng.IntN(4) {
	case 0: // a device id: the event links it to the user
		a := fmt.Sprintf("d-%d-%d", u, g.rng.IntN(3))
		m["anonymousId"] = g.pad(a)
		ev.anon = a
		ev.fields = append(ev.fields, fv{"anonymous_id", a})
	case 1:
		m["anonymousId"] = g.junkID(false)
	}
}

// kind writes a launch, visit or identify into m and returns its kind.
func (g *generator) kind(m map[string]any) string {
	switch r := g.rng.IntN(100); {
	case r < 55:
		m["type"], m["event"] = "track", g.pick("Application Opened", "App Launched")
		return "app"
	case r < 85:
		m["type"], m["name"] = "page", g.pick("Home", "Pricing", "Docs")
		return "web"
	}
	m["type"] = "identify"
	return "identify"
}

// good adds a launch, visit or identify and what it sets.
func (g *generator) good() {
	if g.rng.IntN(300) == 0 {
		g.aliasOnly()
		return
	}
	u := g.user()
	if j := g.journeyOf(u); j != nil {
		j.step(g)
		return
	}
	m := map[string]any{}
	ev := &event{kind: g.kind(m)}
	g.identity(u, m, ev)
	g.add(g.finish(u, m, ev))
}

// finish gives an event of person u (a user number) its time, messageId,
// location, timezone and traits, and returns its record, keyed as
// RudderStack keys it: by userId, else anonymousId.
func (g *generator) finish(u int, m map[string]any, ev *event) *rec {
	t := g.eventTime(u)
	ev.ms = t.UnixMilli()
	ts := g.placeTime(m, t)

	used := g.msgsOf[u]
	if used == nil {
		used = map[string]bool{}
		g.msgsOf[u] = used
	}
	withMsg := g.rng.IntN(100) >= 8 // without one, every record counts
	if withMsg && ev.kind != "identify" && len(g.counts) > 0 && g.rng.IntN(50) == 0 {
		// a messageId another person used: dedupe is per person
		ref := g.counts[g.rng.IntN(len(g.counts))]
		if ref.u != u && !used[ref.msgID] {
			ev.msgID = ref.msgID
		}
	}
	if withMsg && ev.msgID == "" {
		ev.msgID = g.newMsgID()
	}
	if ev.msgID != "" {
		m["messageId"] = ev.msgID
		used[ev.msgID] = true
		if ev.kind != "identify" {
			g.counts = append(g.counts, msgRef{u, ev.msgID})
		}
	}
	ev.fields = append(ev.fields, g.fields(u, ev.kind, m)...)
	return &rec{key: g.key(ev), value: marshal(m), ts: ts, out: applied, ev: ev}
}

func (g *generator) newMsgID() string {
	g.msgN++
	return fmt.Sprintf("m-%x-%d", g.seed, g.msgN)
}

// key is the record key RudderStack gives an event: its userId, else its
// anonymousId; now and then another, since identity comes from the value,
// never the key.
func (g *generator) key(ev *event) []byte {
	if g.rng.IntN(10) == 0 {
		return []byte(fmt.Sprintf("k-%d", g.rng.IntN(1000)))
	}
	if ev.user != "" {
		return []byte(ev.user)
	}
	return []byte(ev.anon)
}

// trait is one candidate trait value: raw as sent, and the stored value
// ("" when the contract drops it).
type trait struct {
	raw  any
	norm string
}

// losers are valid values that context.traits sends beside a value in
// traits; they must never be stored (none is ever generated otherwise).
var losers = map[string]string{"email": "ctx.loses@example.com", "phone": "+12125550199", "birthday": "1949-09-09"}

var validPhones = []string{"+919876543210", "+918123456789", "+12015550123", "+447400123456", "+4915123456789",
	"+61412345678", "+2348031234567", "+33612345678", "+819012345678", "+5511987654321", "+14155552671", "+917012345678"}

func (g *generator) email(u int) trait {
	if g.rng.IntN(7) == 0 {
		bad := g.pick("not-an-email", "user@localhost", "Bob <bob@example.com>", "two@at@example.com", "@example.com", "dot@.example.com")
		g.s.never[bad] = true
		return trait{raw: bad}
	}
	local := fmt.Sprintf("User%d.%c", u, 'a'+g.rng.IntN(3))
	dom := g.pick("Example.COM", "example.com", "Mail.Example.org")
	return trait{raw: g.pad(local + "@" + dom), norm: local + "@" + strings.ToLower(dom)}
}

func (g *generator) phone() trait {
	if g.rng.IntN(7) == 0 {
		bad := g.pick("+1 555", "+999 123456789", "98765 43210", "+91 12")
		g.s.never[bad] = true
		return trait{raw: bad}
	}
	p := validPhones[g.rng.IntN(len(validPhones))]
	raw := p
	if g.rng.IntN(2) == 0 { // spaced as people write them
		cut := 3 + g.rng.IntN(4)
		raw = p[:cut] + " " + p[cut:cut+3] + " " + p[cut+3:]
	}
	return trait{raw: raw, norm: p}
}

func (g *generator) birthday() trait {
	if g.rng.IntN(7) == 0 {
		bad := g.pick("2999-01-01", "1800-05-05", "31/12/1990", "$D_abc", "yesterday")
		g.s.never[bad] = true
		return trait{raw: bad}
	}
	lo := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)
	d := lo.AddDate(0, 0, g.rng.IntN(365*60))
	norm := d.Format("2006-01-02")
	switch g.rng.IntN(5) {
	case 0: // an ISO date-time in UTC
		return trait{raw: d.Add(10*time.Hour + 20*time.Minute).Format(time.RFC3339), norm: norm}
	case 1: // the next day at 01:00 in India is this day in UTC
		return trait{raw: time.Date(d.Year(), d.Month(), d.Day()+1, 1, 0, 0, 0, ist).Format(time.RFC3339), norm: norm}
	case 2: // seconds since 1970, negative before it
		return trait{raw: "$D_" + strconv.FormatInt(d.Add(12*time.Hour).Unix(), 10), norm: norm}
	}
	return trait{raw: norm, norm: norm}
}

// custom returns a custom trait: key and value as sent, and the stored
// value ("" when dropped).
func (g *generator) custom() (string, trait) {
	switch g.rng.IntN(9) {
	case 0:
		s := g.pick("free", "pro", "team")
		return "plan", trait{raw: s, norm: s}
	case 1:
		n := g.rng.IntN(1000)
		return "score", trait{raw: n, norm: strconv.Itoa(n)}
	case 2:
		b := g.rng.IntN(2) == 0
		return "vip", trait{raw: b, norm: strconv.FormatBool(b)}
	case 3:
		xs := [][2]string{{"0.50", "0.5"}, {"2.5e-1", "0.25"}, {"1.0", "1"}, {"12.125", "12.125"}, {"-3", "-3"}, {"1e2", "100"}}
		x := xs[g.rng.IntN(len(xs))]
		return "ratio", trait{raw: json.Number(x[0]), norm: x[1]}
	case 4:
		s := g.pick("Zoë", "Ana", "李", "O'Brien")
		return "nickname", trait{raw: s, norm: s}
	case 5:
		return "prefs", trait{raw: map[string]any{"dark": true}} // objects are dropped
	case 6:
		return "tags", trait{raw: []any{"a", "b"}} // arrays too
	case 7:
		return "bio", trait{raw: strings.Repeat("b", 513)} // over 512 bytes
	default:
		return strings.Repeat("k", 121), trait{raw: "long key"} // over 120 bytes
	}
}

// fields writes location, timezone and traits into m and returns the
// stored fields they set.
func (g *generator) fields(u int, kind string, m map[string]any) []fv {
	var out []fv
	ctx := map[string]any{}
	if g.rng.IntN(100) < 35 {
		loc := map[string]any{}
		city := g.pick("Pune", "Mumbai", "Austin", "Berlin", "Lagos", "São Paulo", "New York")
		loc["city"] = g.pad(city)
		out = append(out, fv{"city", city})
		if g.rng.IntN(3) > 0 {
			country := g.pick("India", "USA", "Germany", "Nigeria", "Brazil")
			loc["country"] = g.pad(country)
			out = append(out, fv{"country", country})
		}
		lats := [][2]string{{"18.5204", "18.5204"}, {"18.52040", "18.5204"}, {"19", "19"}, {"19.0", "19"}, {"-33.8688", "-33.8688"},
			{"1.5e1", "15"}, {"0.5", "0.5"}, {"52.52", "52.52"}, {"-0.1278", "-0.1278"}, {"90", "90"}, {"-90", "-90"}}
		lons := [][2]string{{"73.8567", "73.8567"}, {"73.85670", "73.8567"}, {"-97.7431", "-97.7431"}, {"151.2093", "151.2093"},
			{"13.405", "13.405"}, {"180", "180"}, {"-180.0", "-180"}, {"2e1", "20"}}
		lat, lon := lats[g.rng.IntN(len(lats))], lons[g.rng.IntN(len(lons))]
		switch g.rng.IntN(10) {
		case 0, 1, 2, 3, 4, 5, 6:
			loc["latitude"], loc["longitude"] = json.Number(lat[0]), json.Number(lon[0])
			out = append(out, fv{"coordinates", lat[1] + "," + lon[1]})
		case 7: // half a pair is no pair
			loc["latitude"] = json.Number("12.3456")
		case 8: // out of range: the pair is dropped
			loc["latitude"], loc["longitude"] = json.Number("95.25"), json.Number("10.5")
		}
		ctx["location"] = loc
	}
	if g.rng.IntN(100) < 25 {
		if g.rng.IntN(7) == 0 {
			bad := g.pick("Mars/Olympus_Mons", "Local", "+05:30", "Asia/Nowhere")
			g.s.never[bad] = true
			ctx["timezone"] = bad
		} else {
			tz := g.pick("Asia/Kolkata", "America/New_York", "Europe/Berlin", "UTC", "Australia/Sydney", "America/Sao_Paulo")
			ctx["timezone"] = tz
			out = append(out, fv{"timezone", tz})
		}
	}

	// traits: identify events carry them in traits, launches and visits in
	// context.traits; both are read, and traits wins a shared key
	own, ctxTraits := map[string]any{}, map[string]any{}
	primary, secondary := own, ctxTraits
	if kind != "identify" {
		primary, secondary = ctxTraits, own
	}
	put := func(key, field string, tr trait) {
		switch r := g.rng.IntN(100); {
		case r < 80:
			primary[key] = tr.raw
		case r < 90:
			secondary[key] = tr.raw
		case r < 96: // both: traits wins, whatever context.traits says
			own[key] = tr.raw
			loser, ok := losers[field]
			if !ok {
				loser = "ctx-loses-" + key
			}
			ctxTraits[key] = loser
			g.s.never[loser] = true
		default: // a null in traits is absent, so context.traits counts
			own[key] = nil
			ctxTraits[key] = tr.raw
		}
		if tr.norm != "" {
			out = append(out, fv{field, tr.norm})
		}
	}
	if g.rng.IntN(100) < 50 {
		if g.rng.IntN(100) < 40 {
			put("email", "email", g.email(u))
		}
		if g.rng.IntN(100) < 30 {
			put("phone", "phone", g.phone())
		}
		if g.rng.IntN(100) < 25 {
			put("birthday", "birthday", g.birthday())
		}
		if g.rng.IntN(100) < 30 {
			ct := g.pick("Gold", "Silver", "Bronze", "Platinum")
			put(g.pick("customerType", "customer_type"), "customer_type", trait{raw: ct, norm: ct})
		}
		for k := g.rng.IntN(4); k > 0; k-- {
			key, tr := g.custom()
			if _, dup := own[key]; dup {
				continue
			}
			if _, dup := ctxTraits[key]; dup {
				continue
			}
			put(key, "trait."+key, tr)
		}
	}
	if len(ctxTraits) > 0 {
		ctx["traits"] = ctxTraits
	}
	if len(own) > 0 {
		m["traits"] = own
	}
	if len(ctx) > 0 {
		m["context"] = ctx
	}
	return out
}

// ignored adds a record of a kind profiled skips, sometimes with what would
// be a rejection for a kind it handles: ignored kinds get no further checks.
func (g *generator) ignored() {
	id := fmt.Sprintf("ign-%d", len(g.s.recs))
	var m map[string]any
	switch g.rng.IntN(10) {
	case 0:
		m = map[string]any{"type": "track", "event": "Product Viewed"}
	case 1:
		m = map[string]any{"type": "track", "event": "application opened"}
	case 2:
		m = map[string]any{"type": "track"}
	case 3:
		m = map[string]any{"type": "screen", "name": "Home"}
	case 4:
		m = map[string]any{"type": "group", "groupId": "g-1"}
	case 5: // type is case-sensitive, as TRACK and Page show: not an alias
		m = map[string]any{"type": "Alias", "previousId": g.visitorAnon()}
	case 6:
		m = map[string]any{"type": "TRACK", "event": "Application Opened"}
	case 7:
		m = map[string]any{"type": 5, "event": "Application Opened"}
	case 8:
		m = map[string]any{"event": "App Launched"}
	default:
		m = map[string]any{"type": "Page"}
	}
	switch g.rng.IntN(7) {
	case 0:
		m["userId"] = g.junkID(true)
	case 1:
		m["anonymousId"] = id
	case 2: // both ids: a skipped kind links nothing
		m["userId"], m["anonymousId"] = id, g.visitorAnon()
	default:
		m["userId"] = id
	}
	switch g.rng.IntN(8) {
	case 0:
		m["timestamp"] = "garbage"
	case 1:
		m["timestamp"] = g.now.Add(40 * 24 * time.Hour).Format(time.RFC3339)
	default:
		m["timestamp"] = g.timeText(g.eventTime(1))
	}
	m["traits"] = map[string]any{"email": "ignored@example.com"}
	g.s.never["ignored@example.com"] = true
	g.add(&rec{key: []byte(id), value: marshal(m), ts: g.now, out: skipped})
}

// bad adds a record the contract rejects for reason. Now and then it
// carries a visitor's anonymous id beside its user id (or is an alias of
// one): a rejected record links nothing, so a wrong link shows.
func (g *generator) bad(reason string) {
	id := fmt.Sprintf("bad-%d", len(g.s.recs))
	m := map[string]any{"type": g.pick("track", "page", "identify", "alias"), "event": "Application Opened", "userId": id,
		"messageId": "bad-msg-" + id, "timestamp": g.timeText(g.eventTime(1))}
	if m["type"] == "alias" {
		m["previousId"] = g.visitorAnon()
		if reason == profile.ReasonMissingIdentity {
			g.badAlias(id, m)
			return
		}
	} else if g.rng.IntN(3) == 0 && reason != profile.ReasonMissingIdentity {
		m["anonymousId"] = g.visitorAnon()
	}
	ts := g.now
	var value []byte
	switch reason {
	case profile.ReasonInvalidJSON:
		valid := marshal(m)
		switch g.rng.IntN(7) {
		case 0:
			value = valid[:len(valid)-1-g.rng.IntN(10)] // cut short
		case 1:
			value = append(append([]byte("["), valid...), ']') // an array of an event
		case 2:
			value = []byte(strconv.Quote(id)) // a JSON string
		case 3:
			value = []byte("12345")
		case 4:
			value = append(valid[:len(valid)-1:len(valid)-1], []byte(`,}`)...) // trailing comma
		case 5:
			value = []byte("type=page userId=" + id)
		default:
			value = []byte{0xff, 0xfe, '{', 0x00}
		}
	case profile.ReasonTooLarge:
		m["properties"] = map[string]any{"pad": strings.Repeat("x", 32*1024+g.rng.IntN(4000))}
		switch g.rng.IntN(5) {
		case 0: // size is checked first: broken JSON that large is too large
			v := marshal(m)
			value = v[:len(v)-1]
		case 1:
			m["userId"] = g.junkID(true)
		}
	case profile.ReasonMissingIdentity:
		m["userId"] = g.junkID(true)
		switch g.rng.IntN(3) {
		case 0:
			m["anonymousId"] = g.junkID(false)
		case 1:
			delete(m, "userId")
			m["anonymousId"] = g.junkID(false)
		}
		if g.rng.IntN(5) == 0 { // identity is checked before time
			m["timestamp"] = "not a time"
		}
	case profile.ReasonBadTimestamp:
		bad := []any{"yesterday", "2026-13-01T00:00:00Z", "2026-01-01 10:00:00Z", "2026-01-01T10:00:00", 1700000000, true,
			map[string]any{"t": 1}, "2026-02-30T00:00:00Z"}
		v := bad[g.rng.IntN(len(bad))]
		switch g.rng.IntN(4) {
		case 0:
			m["timestamp"] = v
		case 1:
			m["timestamp"] = nil
			m["originalTimestamp"] = v
		case 2:
			delete(m, "timestamp")
			m["receivedAt"] = v
		default:
			m["timestamp"] = v
			m["originalTimestamp"] = g.timeText(g.eventTime(1)) // never read: the first present time decides
		}
	case profile.ReasonTimestampOutOfRange:
		switch g.rng.IntN(5) {
		case 0:
			m["timestamp"] = g.now.Add(26*time.Hour + time.Duration(g.rng.IntN(30*24))*time.Hour).UTC().Format(time.RFC3339Nano)
		case 1:
			m["timestamp"] = "1999-12-31T23:59:59.999Z"
		case 2:
			m["timestamp"] = "1970-01-01T00:00:00Z"
		case 3:
			m["timestamp"] = "2000-01-01T05:00:00+05:30" // 1999 in UTC
		default: // no time in the value, and the record's own is too old
			delete(m, "timestamp")
			ts = time.Date(1999, 6, 1, 0, 0, 0, 0, time.UTC)
		}
	}
	if value == nil {
		value = marshal(m)
	}
	g.add(&rec{key: []byte(id), value: value, ts: ts, out: dead, reason: reason})
}

// badAlias adds an alias without a usable userId or previousId: rejected
// as missing_identity, whatever its anonymousId and its time.
func (g *generator) badAlias(id string, m map[string]any) {
	switch g.rng.IntN(4) {
	case 0:
		m["previousId"] = g.junkID(false)
	case 1:
		delete(m, "previousId")
		m["anonymousId"] = g.visitorAnon() // not a previousId
	case 2:
		m["userId"] = g.junkID(true)
	default:
		delete(m, "userId")
		m["anonymousId"] = g.visitorAnon()
	}
	if g.rng.IntN(5) == 0 { // identity is checked before time
		m["timestamp"] = "not a time"
	}
	g.add(&rec{key: []byte(id), value: marshal(m), ts: g.now, out: dead, reason: profile.ReasonMissingIdentity})
}

// burst adds 40 oversized records in a row to one partition, as a
// misbehaving producer sends them: each is too large for profiled but fits
// the dead-letter topic, and together they are more than a produce request
// may carry (1 MB by default).
func (g *generator) burst() {
	key := []byte(fmt.Sprintf("burst-%d", len(g.s.recs)))
	for range 40 {
		id := fmt.Sprintf("bad-%d", len(g.s.recs))
		m := map[string]any{"type": "page", "userId": id, "timestamp": g.timeText(g.eventTime(1)),
			"properties": map[string]any{"pad": strings.Repeat("y", 33*1024+g.rng.IntN(2000))}}
		g.add(&rec{key: key, value: marshal(m), ts: g.now, out: dead, reason: profile.ReasonTooLarge})
	}
}

// duplicate adds a producer duplicate of an earlier record: the same value,
// mostly with the same key, sometimes with another (then often in another
// partition).
func (g *generator) duplicate() {
	src := g.s.recs[g.rng.IntN(len(g.s.recs))]
	for src.atLimit { // one byte more and the broker refuses it
		src = g.s.recs[g.rng.IntN(len(g.s.recs))]
	}
	d := *src
	d.dup = true
	if g.rng.IntN(4) == 0 {
		d.key = []byte(fmt.Sprintf("dup-%d", len(g.s.recs)))
	}
	g.add(&d)
}

// tally counts the stream's records by outcome and rejection reason, and
// its producer duplicates.
func (s *stream) tally() (good, skip, dups int, deadBy map[string]int) {
	deadBy = map[string]int{}
	for _, r := range s.recs {
		if r.dup {
			dups++
		}
		switch r.out {
		case applied:
			good++
		case skipped:
			skip++
		case dead:
			deadBy[r.reason]++
		}
	}
	return good, skip, dups, deadBy
}
