package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Config holds the rules that users can tune. The zero value is not usable;
// DefaultConfig gives the contract's defaults.
type Config struct {
	// LaunchEvents are the track event names that count as app launches.
	LaunchEvents []string
	// JunkIDs are identity values (compared case-insensitively) that never
	// name a user. Strings of only zeros are always junk.
	JunkIDs []string
	// MaxEventBytes is the largest accepted record value.
	MaxEventBytes int
	// MaxClockSkew is how far in the future an event time may lie.
	MaxClockSkew time.Duration
	// DefaultPhoneRegion is the ISO 3166 region of numbers written without
	// "+"; empty drops such numbers.
	DefaultPhoneRegion string
}

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	return Config{
		LaunchEvents:  []string{"Application Opened", "App Launched"},
		JunkIDs:       []string{"null", "undefined", "anonymous", "guest", "none", "nan", "0", "-1", "[object object]"},
		MaxEventBytes: 32 << 10,
		MaxClockSkew:  24 * time.Hour,
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if len(c.LaunchEvents) == 0 {
		return errors.New("launch events: at least one name required")
	}
	if c.MaxEventBytes < 64 {
		// below that even a minimal event with a timestamp would not fit
		return errors.New("max event bytes: must be at least 64")
	}
	if c.MaxClockSkew < 0 {
		return errors.New("max clock skew: must not be negative")
	}
	if c.DefaultPhoneRegion != "" && !validRegion(c.DefaultPhoneRegion) {
		return errors.New("default phone region: not a region the phone library knows: " + c.DefaultPhoneRegion)
	}
	return nil
}

// Decoder turns record values into events. It is safe for concurrent use.
type Decoder struct {
	cfg    Config
	launch map[string]struct{}
	junk   map[string]struct{}
	phones *phoneCache
}

// NewDecoder validates cfg and returns a Decoder.
func NewDecoder(cfg Config) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Decoder{cfg: cfg, launch: map[string]struct{}{}, junk: map[string]struct{}{}, phones: newPhoneCache()}
	for _, n := range cfg.LaunchEvents {
		d.launch[n] = struct{}{}
	}
	for _, j := range cfg.JunkIDs {
		d.junk[strings.ToLower(strings.TrimSpace(j))] = struct{}{}
	}
	return d, nil
}

var minEventTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Decode classifies and validates one record value. recordTime is the Kafka
// record's timestamp (used when the event carries no time) and now is the
// processing wall-clock time (for the future-skew and birthday checks).
//
// A record to dead-letter returns a *Rejection. An ignored record returns an
// Event of KindIgnored with its SkipReason and no error; so does a
// tombstone: a null or an empty value (kafka-go hands both as nil).
func (d *Decoder) Decode(value []byte, recordTime, now time.Time) (Event, error) {
	return d.DecodeInto(nil, value, recordTime, now)
}

// DecodeInto is Decode with the event's fields in fields' room: a caller
// that decodes record after record hands back the Fields of an event it
// is done with, and the next event takes them over (fields made afresh
// for every record were 10% of the bytes profiled allocated in a pipeline
// run).
func (d *Decoder) DecodeInto(fields []Field, value []byte, recordTime, now time.Time) (Event, error) {
	if len(value) == 0 {
		return Event{Kind: KindIgnored, SkipReason: SkipTombstone}, nil
	}
	if len(value) > d.cfg.MaxEventBytes {
		return Event{}, reject(ReasonTooLarge, "value is %d bytes, limit %d", len(value), d.cfg.MaxEventBytes)
	}
	trimmed := bytes.TrimLeft(value, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Event{}, reject(ReasonInvalidJSON, "%s", notObject(trimmed))
	}
	buf := envelopeBufs.Get().(*envelopeBuf)
	defer envelopeBufs.Put(buf) // nothing returned points into it
	top, err := decodeEnvelope(value, buf)
	if err != nil {
		return Event{}, reject(ReasonInvalidJSON, "%s", err)
	}

	ev := Event{Kind: d.kind(top)}
	if ev.Kind == KindIgnored {
		if _, ok := stringOf(top.Type); ok && isTrack(top) {
			ev.SkipReason = SkipNotLaunchEvent
		} else {
			ev.SkipReason = SkipUnhandledType
		}
		return ev, nil
	}

	userID, userOK := d.identity(top.UserID, true)
	var anonID string
	var anonOK bool
	if ev.Kind == KindAlias {
		// previousId is always an anonymous id: an alias never merges two
		// user ids (contract section 2a).
		anonID, anonOK = d.identity(top.PreviousID, false)
		switch {
		case !userOK && !anonOK:
			return Event{}, reject(ReasonMissingIdentity, "alias: neither userId nor previousId is usable")
		case !userOK:
			return Event{}, reject(ReasonMissingIdentity, "alias: userId is not usable")
		case !anonOK:
			return Event{}, reject(ReasonMissingIdentity, "alias: previousId is not usable")
		}
		ev.ProfileID, ev.LinkAnonID = userID, anonID
	} else {
		anonID, anonOK = d.identity(top.AnonymousID, false)
		switch {
		case userOK:
			ev.ProfileID = userID
			if anonOK {
				ev.LinkAnonID = anonID
			}
		case anonOK:
			ev.ProfileID = "anon:" + anonID
		default:
			return Event{}, reject(ReasonMissingIdentity, "neither userId nor anonymousId is usable")
		}
	}

	t, rej := eventTime(top, recordTime, now, d.cfg.MaxClockSkew)
	if rej != nil {
		return Event{}, rej
	}
	ev.Time = t

	// A messageId that is not valid UTF-8 as sent counts as absent: repaired,
	// two different ones could read as one and dedupe an event away.
	if s, ok := idString(top.MessageID); ok {
		ev.MessageID = strings.TrimSpace(s)
	} else if lit, ok := integerLiteral(top.MessageID); ok {
		ev.MessageID = lit
	}

	if ev.Kind == KindAlias {
		return ev, nil // an alias sets no field
	}
	if userOK || anonOK {
		// room for the identity and the usual context fields, grown once
		// rather than at 1, 2 and 4 (growslice showed in the pipeline profile)
		ev.Fields = fields[:0]
		if cap(fields) < 8 {
			ev.Fields = make([]Field, 0, 8)
		}
	}
	if userOK {
		ev.Fields = append(ev.Fields, Field{FieldCustomerID, userID})
	}
	if anonOK {
		ev.Fields = append(ev.Fields, Field{FieldAnonymousID, anonID})
	}
	d.fields(&ev, top, now)
	return ev, nil
}

// notObject names what a value that does not start with '{' is; blank is
// whitespace only.
func notObject(trimmed []byte) string {
	if len(trimmed) == 0 {
		return "value is blank"
	}
	kind := ""
	switch c := trimmed[0]; {
	case c == '[':
		kind = "an array"
	case c == '"':
		kind = "a string"
	case c == '-' || (c >= '0' && c <= '9'):
		kind = "a number"
	case c == 't' || c == 'f':
		kind = "a boolean"
	case c == 'n':
		kind = "null"
	}
	if kind != "" && json.Valid(trimmed) {
		return "value is " + kind + ", not a JSON object"
	}
	return "value is not a JSON object"
}

func isTrack(top *envelope) bool {
	s, _ := stringOf(top.Type)
	return s == "track"
}

func (d *Decoder) kind(top *envelope) Kind {
	typ, ok := stringOf(top.Type)
	if !ok {
		return KindIgnored
	}
	switch typ {
	case "track":
		name, ok := stringOf(top.Event)
		if !ok {
			return KindIgnored
		}
		if _, ok := d.launch[name]; ok {
			return KindAppLaunch
		}
		return KindIgnored
	case "page":
		return KindWebVisit
	case "identify":
		return KindIdentify
	case "alias":
		return KindAlias
	}
	return KindIgnored
}

// MaxIDBytes is the longest usable identity.
const MaxIDBytes = 256

// identity returns the usable form of a userId, anonymousId or previousId
// value (contract section 2).
func (d *Decoder) identity(raw json.RawMessage, isUser bool) (string, bool) {
	id, ok := idString(raw)
	if ok {
		id = strings.TrimSpace(id)
	} else if id, ok = integerLiteral(raw); !ok {
		return "", false
	}
	if id == "" || len(id) > MaxIDBytes {
		return "", false
	}
	for _, r := range id {
		if r == '{' || r == '}' || r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return "", false
		}
	}
	if _, junk := d.junk[strings.ToLower(id)]; junk {
		return "", false
	}
	if isZero(id) {
		return "", false
	}
	if isUser && strings.HasPrefix(id, "anon:") {
		return "", false
	}
	return id, true
}

// ValidateProfileID reports why id cannot name a stored profile, or nil
// when it can. A profile id is a usable user id, or "anon:" + a usable
// anonymous id (contract section 2); readers (sink.Get, profilectl, the read
// API) apply these rules so that an impossible id is not found without
// asking Redis, and so that an id is never repaired on the way in: an id
// that is not valid UTF-8 names no profile, as it is never written. The
// configurable junk list and the zero values are left out: they decide
// only what is written, and a profile written under an older list stays
// readable.
func ValidateProfileID(id string) error {
	rest := strings.TrimPrefix(id, "anon:")
	switch {
	case rest == "":
		return errors.New("empty")
	case len(rest) > MaxIDBytes:
		return fmt.Errorf("longer than %d bytes", MaxIDBytes)
	case !utf8.ValidString(id):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(id, func(r rune) bool {
		return r == '{' || r == '}' || r < 0x20 || (r >= 0x7f && r < 0xa0)
	}):
		return errors.New("holds a brace or a control character")
	}
	return nil
}

// isZero reports whether id reads as the number zero: [+-]?0+(\.0+)?, which
// also covers the JSON integer -0. Such ids are always junk.
func isZero(id string) bool {
	if id != "" && (id[0] == '+' || id[0] == '-') {
		id = id[1:]
	}
	whole, frac, dot := strings.Cut(id, ".")
	if whole == "" || strings.Trim(whole, "0") != "" {
		return false
	}
	return !dot || (frac != "" && strings.Trim(frac, "0") == "")
}

// idString returns the value of a JSON string that is valid UTF-8 as sent:
// its bytes are valid UTF-8 and every \u escape of a UTF-16 surrogate is one
// half of a pair. Anything else is refused instead of repaired (stringOf
// would read invalid bytes and lone surrogates as U+FFFD), so two different
// byte strings are never one id (contract section 2).
func idString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if !utf8.Valid(body) {
		return "", false
	}
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body), true
	}
	for i := bytes.IndexByte(body, '\\'); i >= 0 && i < len(body); {
		if body[i] != '\\' {
			i++
			continue
		}
		if i+1 >= len(body) {
			return "", false
		}
		if body[i+1] != 'u' {
			i += 2
			continue
		}
		r, ok := hex4(body, i+2)
		switch {
		case !ok:
			return "", false
		case r >= 0xdc00 && r < 0xe000: // a low half alone
			return "", false
		case r >= 0xd800 && r < 0xdc00: // a high half: its low half must follow
			lo, ok := hex4(body, i+8)
			if !ok || body[i+6] != '\\' || body[i+7] != 'u' || lo < 0xdc00 || lo >= 0xe000 {
				return "", false
			}
			i += 12
		default:
			i += 6
		}
	}
	return stringOf(raw)
}

// hex4 reads the four hexadecimal digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func eventTime(top *envelope, recordTime, now time.Time, skew time.Duration) (int64, *Rejection) {
	var t time.Time
	found := false
	for i, key := range [...]string{"timestamp", "originalTimestamp", "receivedAt"} {
		raw := [...]json.RawMessage{top.Timestamp, top.OriginalTimestamp, top.ReceivedAt}[i]
		if isNull(raw) {
			continue
		}
		s, ok := stringOf(raw)
		if !ok {
			return 0, reject(ReasonBadTimestamp, "%s is not a string", key)
		}
		parsed, ok := parseRFC3339(strings.TrimSpace(s))
		if !ok {
			return 0, reject(ReasonBadTimestamp, "%s is not an RFC 3339 time", key)
		}
		t, found = parsed, true
		break
	}
	source := "event time"
	if !found {
		t, source = recordTime, "record timestamp"
	}
	if t.Before(minEventTime) {
		return 0, reject(ReasonTimestampOutOfRange, "%s is before 2000-01-01", source)
	}
	if t.After(now.Add(skew)) {
		return 0, reject(ReasonTimestampOutOfRange, "%s is more than %s in the future", source, skew)
	}
	return t.UnixMilli(), nil
}

// stringOf returns the value of a JSON string.
func stringOf(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	// raw was validated by the decoder that cut it out, so a string without
	// escapes in valid UTF-8 is its own value; json.Unmarshal (escapes,
	// invalid UTF-8 replaced by U+FFFD) only for the rest. This was 17% of
	// profiled's CPU.
	if len(raw) >= 2 && raw[len(raw)-1] == '"' {
		if body := raw[1 : len(raw)-1]; bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
			return string(body), true
		}
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// integerLiteral returns a JSON number written as a decimal integer.
func integerLiteral(raw json.RawMessage) (string, bool) {
	s := string(raw)
	if s == "" {
		return "", false
	}
	digits := strings.TrimPrefix(s, "-")
	if digits == "" {
		return "", false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", false
		}
	}
	return s, true
}
