package profile

import (
	"encoding/json"
	"math"
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // IANA zones must validate the same on every machine
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Limits of custom traits and free-text fields.
const (
	MaxTraitKeyBytes   = 120
	MaxTraitValueBytes = 512
	MaxTraits          = 256
	MaxTextBytes       = 512
	maxEmailBytes      = 254
)

// Reasons a field is dropped.
const (
	DropWrongType  = "wrong_type"
	DropEmpty      = "empty"
	DropTooLong    = "too_long"
	DropInvalid    = "invalid"
	DropNoRegion   = "no_region"
	DropOutOfRange = "out_of_range"
	DropIncomplete = "incomplete"
	DropLimit      = "limit"
)

// DropReasons lists every drop reason, for metric initialisation.
var DropReasons = []string{DropWrongType, DropEmpty, DropTooLong, DropInvalid, DropNoRegion, DropOutOfRange, DropIncomplete, DropLimit}

// DropFields lists every field name a Drop can carry.
var DropFields = []string{FieldEmail, FieldPhone, FieldBirthday, FieldCustomerType, FieldCity, FieldCountry, FieldCoordinates, FieldTimezone, "trait"}

// reservedTraits are trait keys with a field of their own.
var reservedTraits = map[string]bool{
	"email": true, "phone": true, "birthday": true, "customerType": true, "customer_type": true,
}

// fields reads every profile field of section 4 into ev.
func (d *Decoder) fields(ev *Event, top *envelope, now time.Time) {
	ctx := top.Context
	if ctx == nil {
		ctx = &contextEnvelope{}
	}
	own, ctxTraits := objectOf(top.Traits), objectOf(ctx.Traits)
	traits := mergedTraits(own, ctxTraits)

	add := func(name, value string) { ev.Fields = append(ev.Fields, Field{name, value}) }
	drop := func(name, reason string) { ev.Dropped = append(ev.Dropped, Drop{name, reason}) }

	if raw, ok := traits["email"]; ok && !isNull(raw) {
		if v, why := normEmail(raw); why == "" {
			add(FieldEmail, v)
		} else {
			drop(FieldEmail, why)
		}
	}
	if raw, ok := traits["phone"]; ok && !isNull(raw) {
		if v, why := d.phones.norm(raw, d.cfg.DefaultPhoneRegion); why == "" {
			add(FieldPhone, v)
		} else {
			drop(FieldPhone, why)
		}
	}
	if raw, ok := traits["birthday"]; ok && !isNull(raw) {
		if v, why := normBirthday(raw, now); why == "" {
			add(FieldBirthday, v)
		} else {
			drop(FieldBirthday, why)
		}
	}
	// customerType and customer_type are one field: traits wins over
	// context.traits whichever spelling each uses.
	var ctRaw json.RawMessage
	for _, src := range [...]map[string]json.RawMessage{own, ctxTraits} {
		if raw := src["customerType"]; !isNull(raw) {
			ctRaw = raw
		} else if raw := src["customer_type"]; !isNull(raw) {
			ctRaw = raw
		}
		if ctRaw != nil {
			break
		}
	}
	if ctRaw != nil {
		if v, why := normText(ctRaw); why == "" {
			add(FieldCustomerType, v)
		} else {
			drop(FieldCustomerType, why)
		}
	}

	loc := ctx.Location
	if loc == nil {
		loc = &locationEnvelope{}
	}
	for i, f := range [...]string{"city", "country"} {
		if raw := [...]json.RawMessage{loc.City, loc.Country}[i]; !isNull(raw) {
			if v, why := normText(raw); why == "" {
				add(f, v)
			} else {
				drop(f, why)
			}
		}
	}
	latRaw, lonRaw := loc.Latitude, loc.Longitude
	latOK, lonOK := !isNull(latRaw), !isNull(lonRaw)
	if latOK || lonOK {
		if v, why := normCoordinates(latRaw, lonRaw); why == "" {
			add(FieldCoordinates, v)
		} else {
			drop(FieldCoordinates, why)
		}
	}
	if raw := ctx.Timezone; !isNull(raw) {
		if v, why := normTimezone(raw); why == "" {
			add(FieldTimezone, v)
		} else {
			drop(FieldTimezone, why)
		}
	}

	keys := make([]string, 0, len(traits))
	for k := range traits {
		keys = append(keys, k)
	}
	sort.Strings(keys) // Fields and Dropped in a stable order
	custom := make([]Field, 0, len(traits))
	for _, k := range keys {
		raw := traits[k]
		if reservedTraits[k] || isNull(raw) {
			continue
		}
		switch {
		case k == "":
			drop("trait", DropEmpty)
			continue
		case len(k) > MaxTraitKeyBytes:
			drop("trait", DropTooLong)
			continue
		}
		v, why := normScalar(raw)
		switch {
		case why != "":
		case v == "":
			why = DropEmpty // an empty value would read as "never set"
		case len(v) > MaxTraitValueBytes:
			why = DropTooLong
		}
		if why != "" {
			drop("trait", why)
			continue
		}
		custom = append(custom, Field{TraitPrefix + k, v})
	}
	if len(custom) > MaxTraits { // custom is sorted by key
		for range custom[MaxTraits:] {
			drop("trait", DropLimit)
		}
		custom = custom[:MaxTraits]
	}
	ev.Fields = append(ev.Fields, custom...)
}

// mergedTraits overlays traits on context.traits: traits wins a shared key.
// A null in traits carries no value, so it does not hide context.traits.
func mergedTraits(traits, ctxTraits map[string]json.RawMessage) map[string]json.RawMessage {
	if len(ctxTraits) == 0 {
		return traits
	}
	if len(traits) == 0 {
		return ctxTraits
	}
	out := make(map[string]json.RawMessage, len(traits)+len(ctxTraits))
	for k, v := range ctxTraits {
		out[k] = v
	}
	for k, v := range traits {
		if !isNull(v) {
			out[k] = v
		}
	}
	return out
}

func objectOf(raw json.RawMessage) map[string]json.RawMessage {
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	if m, ok := scanObject(raw); ok {
		return m
	}
	return objectOfJSON(raw)
}

// scanObject is objectOf in one pass of the envelope scanner, without
// encoding/json's reflection and copies; the values are sub-slices of raw.
// ok is false when encoding/json could decide differently — a name with
// an escape sequence or invalid UTF-8 (which encoding/json unescapes or
// replaces), nesting too deep, an invalid or trailing value — and then
// objectOfJSON decides. Duplicate names: the last wins, as in encoding/json.
func scanObject(raw []byte) (map[string]json.RawMessage, bool) {
	s := scanner{v: raw}
	m := map[string]json.RawMessage{}
	ok := s.object(func(name, v []byte) {
		if !utf8.Valid(name) {
			s.punt = true
			return
		}
		m[string(name)] = v
	})
	if !ok || s.punt {
		return nil, false
	}
	s.space()
	return m, s.i == len(s.v)
}

// objectOfJSON is objectOf through encoding/json: the reference.
func objectOfJSON(raw json.RawMessage) map[string]json.RawMessage {
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// trimmedText is raw as a string without surrounding white space, at
// most limit bytes long and not empty; otherwise the reason it is dropped.
func trimmedText(raw json.RawMessage, limit int) (string, string) {
	s, ok := stringOf(raw)
	if !ok {
		return "", DropWrongType
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", DropEmpty
	case len(s) > limit:
		return "", DropTooLong
	}
	return s, ""
}

func normText(raw json.RawMessage) (string, string) {
	return trimmedText(raw, MaxTextBytes)
}

func normEmail(raw json.RawMessage) (string, string) {
	s, reason := trimmedText(raw, maxEmailBytes)
	if reason != "" {
		return "", reason
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", DropInvalid
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") ||
		strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") || strings.ContainsAny(domain, "[]") {
		return "", DropInvalid
	}
	return local + "@" + strings.ToLower(domain), ""
}

func validRegion(region string) bool {
	return phonenumbers.GetCountryCodeForRegion(strings.ToUpper(region)) != 0
}

func normPhone(raw json.RawMessage, region string) (string, string) {
	s, ok := stringOf(raw)
	if !ok {
		if s, ok = integerLiteral(raw); !ok {
			return "", DropWrongType
		}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", DropEmpty
	}
	if len(s) > 64 {
		return "", DropTooLong
	}
	if !strings.HasPrefix(s, "+") {
		if region == "" {
			return "", DropNoRegion
		}
	} else {
		region = "ZZ"
	}
	num, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", DropInvalid
	}
	return phonenumbers.Format(num, phonenumbers.E164), ""
}

// phoneCache remembers the outcome of recent phone numbers. The library's
// parse and validation are regular-expression work — 24 µs of the 42 µs an
// identify with a phone took to decode — and a user's events carry the same
// number again and again. The outcome depends on the number and the region
// alone. When full, the cache starts again empty: cheap, and the numbers
// that recur fill it again first.
type phoneCache struct {
	mu sync.Mutex
	m  map[phoneKey]phoneOutcome
}

type phoneKey struct{ number, region string }

type phoneOutcome struct{ value, drop string }

const phoneCacheSize = 4096

func newPhoneCache() *phoneCache { return &phoneCache{m: map[phoneKey]phoneOutcome{}} }

// norm is normPhone through the cache.
func (c *phoneCache) norm(raw json.RawMessage, region string) (string, string) {
	s, ok := stringOf(raw)
	if !ok || len(s) > 64 {
		return normPhone(raw, region) // the cheap refusals, or integers
	}
	k := phoneKey{s, region}
	c.mu.Lock()
	o, hit := c.m[k]
	c.mu.Unlock()
	if hit {
		return o.value, o.drop
	}
	o.value, o.drop = normPhone(raw, region)
	c.mu.Lock()
	if len(c.m) >= phoneCacheSize {
		clear(c.m)
	}
	c.m[k] = o
	c.mu.Unlock()
	return o.value, o.drop
}

func normBirthday(raw json.RawMessage, now time.Time) (string, string) {
	s, ok := stringOf(raw)
	if !ok {
		return "", DropWrongType
	}
	s = strings.TrimSpace(s)
	var day time.Time
	switch {
	case s == "":
		return "", DropEmpty
	case strings.HasPrefix(s, "$D_"):
		secs, err := strconv.ParseInt(s[3:], 10, 64)
		if err != nil || secs > 1<<40 || secs < -(1<<40) {
			return "", DropInvalid
		}
		day = time.Unix(secs, 0).UTC()
	case len(s) == len("2006-01-02"):
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return "", DropInvalid
		}
		day = t
	default:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			if t, err = time.Parse("2006-01-02T15:04:05.999999999", s); err != nil {
				return "", DropInvalid
			}
		}
		day = t.UTC()
	}
	// Compare dates, not strings: "19000-01-01" sorts before "2026-...".
	y, m, dd := day.Date()
	day = time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
	ty, tm, td := now.UTC().Date()
	today := time.Date(ty, tm, td, 0, 0, 0, 0, time.UTC)
	if day.After(today) || day.Before(today.AddDate(-130, 0, 0)) {
		return "", DropOutOfRange
	}
	return day.Format("2006-01-02"), ""
}

func normCoordinates(latRaw, lonRaw json.RawMessage) (string, string) {
	if isNull(latRaw) || isNull(lonRaw) {
		return "", DropIncomplete
	}
	lat, ok1 := numberOf(latRaw)
	lon, ok2 := numberOf(lonRaw)
	if !ok1 || !ok2 {
		return "", DropWrongType
	}
	if lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return "", DropOutOfRange
	}
	if shortestAsSent(latRaw) && shortestAsSent(lonRaw) {
		return string(latRaw) + "," + string(lonRaw), ""
	}
	return FormatNumber(lat) + "," + FormatNumber(lon), ""
}

func numberOf(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// shortestAsSent reports whether the JSON number raw is already what
// FormatNumber writes for its value, so that its text can be kept instead
// of formatting the float again (two of the float formattings were a
// tenth of decoding a launch with a location): no exponent, no leading
// zero but the one before a point, no trailing zero after a point, a
// digit other than zero, and at most 15 significant digits. Two decimals
// of at most 15 significant digits never read as the same float64 (its
// 15 guaranteed decimal digits), so such a literal is the only shortest
// form of its value, written the way 'f' formatting writes it.
func shortestAsSent(raw []byte) bool {
	i := 0
	if len(raw) > 0 && raw[0] == '-' {
		i++
	}
	digits := func() []byte {
		start := i
		for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
		return raw[start:i]
	}
	whole := digits()
	if len(whole) == 0 || (len(whole) > 1 && whole[0] == '0') {
		return false
	}
	significant := 0
	if whole[0] != '0' {
		significant = len(whole) // trailing zeros counted too: never too few
	}
	if i < len(raw) {
		if raw[i] != '.' {
			return false // an exponent
		}
		i++
		frac := digits()
		if i != len(raw) || len(frac) == 0 || frac[len(frac)-1] == '0' {
			return false
		}
		if significant == 0 {
			for len(frac) > 0 && frac[0] == '0' { // 0.000123: three
				frac = frac[1:]
			}
		}
		significant += len(frac)
	}
	return significant > 0 && significant <= 15
}

// FormatNumber renders f in its shortest decimal form that reads back to f,
// never with an exponent.
func FormatNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

var validZones sync.Map // name -> struct{}: bounded by the IANA database

func normTimezone(raw json.RawMessage) (string, string) {
	s, ok := stringOf(raw)
	if !ok {
		return "", DropWrongType
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", DropEmpty
	}
	if _, ok := validZones.Load(s); ok {
		return s, ""
	}
	if s == "Local" || len(s) > 64 || strings.Contains(s, "..") || strings.HasPrefix(s, "/") || !ianaName(s) {
		return "", DropInvalid
	}
	if _, err := time.LoadLocation(s); err != nil {
		return "", DropInvalid
	}
	validZones.Store(s, struct{}{})
	return s, ""
}

// ianaName rejects the names that a system zoneinfo directory holds beside
// the IANA zones, which time.LoadLocation would accept on some machines only:
// "localtime" (the machine's zone, like Local), "posixrules", and the
// "posix/" and "right/" copies of the database.
func ianaName(s string) bool {
	first, _, _ := strings.Cut(s, "/")
	switch first {
	case "localtime", "posixrules", "posix", "right":
		return false
	}
	return true
}

// normScalar renders a custom trait value: strings as sent, integers
// with every digit as sent, other numbers in their shortest form,
// booleans as true or false.
func normScalar(raw json.RawMessage) (string, string) {
	switch {
	case len(raw) == 0:
		return "", DropWrongType
	case raw[0] == '"':
		s, ok := stringOf(raw)
		if !ok {
			return "", DropWrongType
		}
		if !utf8.ValidString(s) {
			return "", DropInvalid
		}
		return s, ""
	case string(raw) == "true" || string(raw) == "false":
		return string(raw), ""
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		// An integer keeps every digit as sent, also beyond 2^53 and
		// int64, where a float would round it (contract section 6). JSON
		// allows no leading zeros, so the literal is already shortest;
		// only -0 reads as 0.
		if lit, ok := integerLiteral(raw); ok {
			if lit == "-0" {
				return "0", ""
			}
			return lit, ""
		}
		f, ok := numberOf(raw)
		if !ok {
			return "", DropInvalid
		}
		if shortestAsSent(raw) {
			return string(raw), ""
		}
		return FormatNumber(f), ""
	}
	return "", DropWrongType
}
