package faults_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/profiled/profiled/profile"
)

// Hostile input in the stream (issue 11): ids that are not valid UTF-8 as
// sent, headers forged under profiled's own profiled.* names, and records
// exactly as large as the broker accepts. What each becomes is decided by
// the model's rules (readIDs, letterHeaders in model_test.go), from the
// bytes the generator wrote, never by asking the product.

// header is a Kafka record header as a producer sends it.
type header struct{ key, value string }

// brokerMaxMessageBytes is the broker's message.max.bytes default, which
// deploy/kafka.sh leaves alone: the largest record batch a topic created
// without settings (as the suite creates its input topics) accepts.
const brokerMaxMessageBytes = 1048588

// dlqHeaderRoom is what the dead-letter topic profiled creates may hold
// beyond the largest input record (contract section 7: 64 KiB).
const dlqHeaderRoom = 64 << 10

// hostile adds a hostile record or a small group of them: a fifth forged
// headers on a rejected record, a fifth forged headers on any other record,
// the rest ids that are not valid UTF-8.
func (g *generator) hostile() {
	switch g.rng.IntN(5) {
	case 0:
		g.bad(profile.RejectReasons[g.rng.IntN(len(profile.RejectReasons))])
		g.forge(g.s.recs[len(g.s.recs)-1])
	case 1: // forged headers change nothing about a record profiled applies or skips
		if g.rng.IntN(2) == 0 {
			g.good()
		} else {
			g.ignored()
		}
		g.forge(g.s.recs[len(g.s.recs)-1])
	default:
		g.badUTF8()
	}
}

// forge gives r headers under profiled's names, unless r is at the size
// limit (one header more and the broker refuses it).
func (g *generator) forge(r *rec) {
	if !r.atLimit {
		r.headers = g.forgedHeaders()
	}
}

// forgedHeaders returns headers a producer sends under profiled's own
// names, with values that mislead a reader taking the first header of a
// name: the position of another record (offsets below 50 exist in every
// partition), another reason, a drop marker. The source position is always
// forged; the rest now and then.
func (g *generator) forgedHeaders() []header {
	hs := []header{
		{"profiled.source.partition", strconv.Itoa(g.rng.IntN(partitions))},
		{"profiled.source.offset", strconv.Itoa(g.rng.IntN(50))},
	}
	more := []header{
		{"profiled.source.topic", "faults-forged"},
		{"profiled.error.reason", g.pick("none", profile.ReasonTooLarge, profile.ReasonInvalidJSON)},
		{"profiled.error.detail", "forged by the producer"},
		{"profiled.failed_at", "2001-01-01T00:00:00Z"},
		{"profiled.error.value_dropped", "0"},
		{"profiled.error.key_headers_dropped", "0"},
		{"profiled.original.source.offset", "7"}, // renamed again: profiled.original.original.source.offset
		{"profiled.", "a name with nothing after the prefix"},
		{"profiledx.source.offset", "not under the prefix: kept as it is"},
		{"x-trace", "kept as it is"},
	}
	for _, h := range more {
		if g.rng.IntN(3) == 0 {
			hs = append(hs, h)
		}
	}
	g.rng.Shuffle(len(hs), func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
	if g.rng.IntN(2) == 0 { // a second copy of a name: the first is not the last
		hs = append(hs, header{"profiled.source.offset", strconv.Itoa(50 + g.rng.IntN(50))})
	}
	return hs
}

// rawValue returns m as JSON with the members in raw written as raw
// string bytes: encoding/json would replace bytes that are not UTF-8.
// A raw value holds no '"', '\\' or byte below 0x20, so the JSON around
// it stays well-formed.
func rawValue(m map[string]any, raw map[string]string) []byte {
	for k := range raw {
		m[k] = "\x60raw:" + k + "\x60" // a backquote: never escaped, never in a generated value
	}
	v := marshal(m)
	for k, s := range raw {
		v = bytes.Replace(v, []byte(`"`+"\x60raw:"+k+"\x60"+`"`), []byte(`"`+s+`"`), 1)
	}
	return v
}

// invalid returns name spelled with bytes that are not UTF-8, in one of
// the ways broken senders spell it.
func (g *generator) invalid(name string) string {
	switch g.rng.IntN(6) {
	case 0:
		return "\xff\xfe" + name
	case 1:
		return "\x80" + name // a continuation byte alone
	case 2:
		return name + "\xc0\xaf" // an overlong "/"
	case 3:
		return name + "\xed\xa0\x80" // a UTF-16 surrogate written as UTF-8
	case 4:
		return name + "\xe2\x82" // "€" cut short
	}
	return name + "\xf8\x88\x80\x80\x80" // a five-byte sequence
}

// valid returns name spelled with characters beyond ASCII, valid UTF-8.
func (g *generator) valid(name string) string {
	return g.pick("Zo\u00eb-", "\u674e-", "") + name + g.pick("", "-\u20ac")
}

// badUTF8 adds a small group of records whose ids are not valid UTF-8 as
// sent (contract section 2: such an id is never usable, never repaired).
// A reader that repairs makes "\xff\xfe"+x and "\xfe\xff"+x both
// "\uFFFD\uFFFD"+x, the id a third record sends as it is: repaired, the
// three would be one profile with three events; by the contract the first
// two are dead-lettered and the third alone makes that profile.
func (g *generator) badUTF8() {
	name := fmt.Sprintf("h-%d", len(g.s.recs))
	repaired := "\uFFFD\uFFFD" + name
	switch g.rng.IntN(6) {
	case 0, 1: // the userId, or the anonymousId, alone
		field := map[bool]string{true: "userId", false: "anonymousId"}[g.rng.IntN(2) == 0]
		for _, id := range []string{"\xff\xfe" + name, "\xfe\xff" + name, repaired} {
			g.rawEvent(map[string]string{field: id}, g.pick("track", "page", "identify"), 0)
		}
	case 2: // a usable userId and an anonymousId: applied to the user; one not UTF-8 links nothing
		u := g.plainUser()
		id, sent := g.userID(u)
		anon := g.invalid("hd-" + name)
		if g.rng.IntN(4) == 0 {
			anon = g.valid("hd-" + name) // this one is linked
		}
		g.rawEventSent(map[string]string{"anonymousId": anon}, map[string]any{"userId": sent}, id, g.pick("track", "page", "identify"), u)
	case 3: // a userId not UTF-8 and a visitor's anonymousId: applied to the visitor
		g.rawEvent(map[string]string{"userId": g.invalid(name), "anonymousId": g.visitorAnon()}, g.pick("track", "page", "identify"), 0)
	case 4: // an alias whose previousId or userId is not UTF-8: missing_identity, links nothing
		raw := map[string]string{"userId": fmt.Sprintf("ua-%d", len(g.s.recs)), "previousId": g.invalid(name)}
		if g.rng.IntN(2) == 0 {
			raw["userId"], raw["previousId"] = g.invalid(name), g.visitorAnon()
		}
		g.rawEvent(raw, "alias", 0)
	default: // a messageId not UTF-8 is absent: the same one twice counts twice
		u := g.plainUser()
		id, sent := g.userID(u)
		msg := "\xff" + g.newMsgID()
		for range 2 {
			g.rawEventSent(map[string]string{"messageId": msg}, map[string]any{"userId": sent}, id, g.pick("track", "page"), u)
		}
	}
}

// plainUser returns a user who signs in from the start (no journey, not a
// visitor), so that a hostile record of theirs changes no journey.
func (g *generator) plainUser() int {
	for {
		if u := g.user(); !isJourney(u) && u%7 != 0 {
			return u
		}
	}
}

// rawEvent adds an event of the kind ("track" is a launch) with the raw ids
// given, keyed as RudderStack keys it.
func (g *generator) rawEvent(raw map[string]string, kind string, u int) {
	g.rawEventSent(raw, map[string]any{}, "", kind, u)
}

// rawEventSent adds an event with raw members and members m (a userId as
// a sender writes it, whose usable form is user); what it becomes is read
// from the raw bytes by the model's readIDs.
func (g *generator) rawEventSent(raw map[string]string, m map[string]any, user, kind string, u int) {
	m["type"] = kind
	switch kind {
	case "track":
		m["event"] = g.pick("Application Opened", "App Launched")
	case "page":
		m["name"] = "Home"
	}
	if _, ok := raw["messageId"]; !ok {
		m["messageId"] = g.newMsgID()
	}
	t := g.eventTime(u)
	m["timestamp"] = g.timeText(t)
	value := rawValue(m, raw)

	rawUser, hasUser := raw["userId"]
	if !hasUser {
		rawUser = user
	}
	rawAnon := raw["anonymousId"]
	if kind == "alias" {
		rawAnon = raw["previousId"]
	}
	uid, aid, ok := readIDs(rawUser, rawAnon, kind == "alias")
	if !ok {
		key := rawUser
		if key == "" {
			key = rawAnon
		}
		g.add(&rec{key: []byte(key), value: value, ts: g.now, out: dead, reason: profile.ReasonMissingIdentity})
		return
	}
	ev := &event{kind: map[string]string{"track": "app", "page": "web"}[kind], user: uid, anon: aid, ms: t.UnixMilli()}
	if ev.kind == "" {
		ev.kind = kind // identify, alias
	}
	if msg, ok := raw["messageId"]; ok {
		ev.msgID = readMessageID(msg)
	} else {
		ev.msgID, _ = m["messageId"].(string)
	}
	ev.identify()
	g.add(&rec{key: g.key(ev), value: value, ts: g.now, out: applied, ev: ev})
}

// atLimitRecord adds a record exactly as large as the broker accepts (its
// record batch is message.max.bytes): too large for profiled (over
// PROFILED_MAX_EVENT_BYTES), so dead-lettered as too_large, and its dead
// letter, value and all, must fit the dead-letter topic profiled creates.
// The first of a stream carries forged headers as well.
func (g *generator) atLimitRecord() {
	seq := len(g.s.recs)
	r := &rec{key: []byte(fmt.Sprintf("limit-%d", seq)), ts: g.now, out: dead, reason: profile.ReasonTooLarge, atLimit: true}
	first := true
	for _, x := range g.s.recs {
		if x.atLimit {
			first = false
			break
		}
	}
	if first {
		r.headers = g.forgedHeaders()
	}
	hs := append([]header{{seqHeader, strconv.Itoa(seq)}}, r.headers...)
	head := fmt.Sprintf(`{"type":"page","userId":"bad-%d","timestamp":%q,"properties":{"pad":"`, seq, g.timeText(g.eventTime(1)))
	value := func(pad int) []byte { return []byte(head + strings.Repeat("z", pad) + `"}}`) }
	pad := brokerMaxMessageBytes - batchBytes(r.key, value(0), hs)
	for batchBytes(r.key, value(pad), hs) > brokerMaxMessageBytes { // a longer length prefix
		pad--
	}
	r.value = value(pad)
	g.add(r)
}

// batchBytes is the size of a record batch (Kafka's message format v2,
// uncompressed) holding one record: what the broker compares with
// message.max.bytes. The batch header is 61 bytes; the record is its
// length, an attribute byte, the timestamp and offset deltas (0 for the
// first record), then key, value and headers, each with a length; every
// length and delta a zigzag varint.
func batchBytes(key, value []byte, hs []header) int {
	body := 1 + varintLen(0) + varintLen(0) + varintLen(len(key)) + len(key) + varintLen(len(value)) + len(value) + varintLen(len(hs))
	for _, h := range hs {
		body += varintLen(len(h.key)) + len(h.key) + varintLen(len(h.value)) + len(h.value)
	}
	return 61 + varintLen(body) + body
}

// varintLen is the length of n as a zigzag varint.
func varintLen(n int) int {
	u := uint64(n<<1) ^ uint64(n>>63)
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}
