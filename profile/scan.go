package profile

// A one-pass reader of the envelope. Profiling the pipeline showed
// encoding/json.Unmarshal into the envelope at a third of profiled's CPU:
// it validates the whole value first (checkValid), then walks it again with
// reflection, copying every member it keeps. The envelope needs neither:
// it is a handful of members at known places, kept as raw JSON. scanEnvelope
// validates the value as it walks it, once, and keeps sub-slices of it.
//
// Its semantics are slowEnvelope's, the reference: members picked by exact
// name; the last of duplicate members wins; a context or location that is
// not an object counts as absent. Whatever it does not decide exactly the
// same way — a member name with an escape sequence (encoding/json compares
// names after unescaping), nesting deeper than encoding/json allows, and
// any invalid value (so that what is invalid is decided by encoding/json
// alone) — it hands back, and decodeEnvelope asks slowEnvelope instead.
// FuzzDecode compares the two on every input.

// maxScanDepth bounds nesting, far below encoding/json's limit (10,000);
// deeper values go to slowEnvelope, which reports what encoding/json does.
const maxScanDepth = 1000

type scanner struct {
	v     []byte
	i     int
	depth int
	punt  bool         // undecidable here: ask slowEnvelope
	buf   *envelopeBuf // where the envelope and its nested members go
}

// scanEnvelope reads value into an envelope. exact is false when the
// caller must use slowEnvelope instead (see above).
func scanEnvelope(value []byte, buf *envelopeBuf) (env *envelope, exact bool) {
	s := scanner{v: value, buf: buf}
	s.space()
	env = &buf.env
	*env = envelope{}
	ok := s.object(func(name []byte, raw []byte) {
		switch string(name) {
		case "type":
			env.Type = raw
		case "event":
			env.Event = raw
		case "userId":
			env.UserID = raw
		case "anonymousId":
			env.AnonymousID = raw
		case "previousId":
			env.PreviousID = raw
		case "messageId":
			env.MessageID = raw
		case "timestamp":
			env.Timestamp = raw
		case "originalTimestamp":
			env.OriginalTimestamp = raw
		case "receivedAt":
			env.ReceivedAt = raw
		case "traits":
			env.Traits = raw
		case "context":
			env.Context = s.context(raw)
		}
	})
	if !ok || s.punt {
		return nil, false
	}
	s.space()
	if s.i != len(s.v) {
		return nil, false // trailing data: invalid, decided by the reference
	}
	return env, true
}

// nested reads an already validated member that ought to be an object
// into a new T, calling member for each of its members; nil when it is not
// an object. An escaped name inside sets s.punt, as at the top level.
func nested[T any](s *scanner, raw []byte, into *T, member func(into *T, name, raw []byte)) *T {
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var zero T
	*into = zero // a member named twice: the last one alone counts
	in := scanner{v: raw}
	in.object(func(name, raw []byte) { member(into, name, raw) })
	s.punt = s.punt || in.punt
	return into
}

// context reads a context member; nil when it is not an object.
func (s *scanner) context(raw []byte) *contextEnvelope {
	return nested(s, raw, &s.buf.ctx, func(ctx *contextEnvelope, name, raw []byte) {
		switch string(name) {
		case "traits":
			ctx.Traits = raw
		case "timezone":
			ctx.Timezone = raw
		case "location":
			ctx.Location = s.location(raw)
		}
	})
}

// location reads a location member; nil when it is not an object.
func (s *scanner) location(raw []byte) *locationEnvelope {
	return nested(s, raw, &s.buf.loc, func(loc *locationEnvelope, name, raw []byte) {
		switch string(name) {
		case "city":
			loc.City = raw
		case "country":
			loc.Country = raw
		case "latitude":
			loc.Latitude = raw
		case "longitude":
			loc.Longitude = raw
		}
	})
}

func (s *scanner) space() {
	for s.i < len(s.v) {
		switch s.v[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads an object at s.i and calls member, unless nil, with each
// member's name (never escaped: an escaped name sets s.punt) and raw value.
// It reports false when the object is invalid or s.punt was set.
func (s *scanner) object(member func(name, raw []byte)) bool {
	if s.i >= len(s.v) || s.v[s.i] != '{' {
		return false
	}
	if s.open('}') {
		return true
	}
	for {
		if s.i >= len(s.v) || s.v[s.i] != '"' {
			return false
		}
		start := s.i + 1
		escaped, ok := s.str()
		if !ok {
			return false
		}
		if escaped && member != nil {
			s.punt = true
			return false
		}
		name := s.v[start : s.i-1]
		s.space()
		if s.i >= len(s.v) || s.v[s.i] != ':' {
			return false
		}
		s.i++
		s.space()
		vstart := s.i
		if !s.value() {
			return false
		}
		if member != nil {
			member(name, s.v[vstart:s.i:s.i])
		}
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

// value skips one valid JSON value at s.i.
func (s *scanner) value() bool {
	if s.i >= len(s.v) {
		return false
	}
	switch c := s.v[s.i]; {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		if s.depth++; s.depth > maxScanDepth {
			s.punt = true
			return false
		}
		ok := s.object(nil)
		s.depth--
		return ok
	case c == '[':
		if s.depth++; s.depth > maxScanDepth {
			s.punt = true
			return false
		}
		ok := s.array()
		s.depth--
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *scanner) array() bool {
	if s.open(']') {
		return true
	}
	for {
		if !s.value() {
			return false
		}
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}

// open steps over the opening bracket at s.i and the space after it, and
// reports whether closer follows at once (an empty object or array), which
// it steps over too.
func (s *scanner) open(closer byte) (empty bool) {
	s.i++
	s.space()
	if s.i < len(s.v) && s.v[s.i] == closer {
		s.i++
		return true
	}
	return false
}

// next reads what follows a member or an element: a comma, then more
// follow; or closer, the end. ok is false for anything else.
func (s *scanner) next(closer byte) (more, ok bool) {
	s.space()
	if s.i >= len(s.v) {
		return false, false
	}
	switch s.v[s.i] {
	case ',':
		s.i++
		s.space()
		return true, true
	case closer:
		s.i++
		return false, true
	}
	return false, false
}

// str skips a string at s.i (its opening quote) and reports whether it
// held an escape sequence. As in encoding/json, any byte from 0x20 up is
// accepted as it is (invalid UTF-8 included); control bytes are not.
func (s *scanner) str() (escaped, ok bool) {
	s.i++ // opening quote
	for s.i < len(s.v) {
		c := s.v[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, true
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.v) {
				return escaped, false
			}
			switch s.v[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.v) {
					return escaped, false
				}
				for _, h := range s.v[s.i+2 : s.i+6] {
					if !isHex(h) {
						return escaped, false
					}
				}
				s.i += 6
			default:
				return escaped, false
			}
		case c < 0x20:
			return escaped, false
		default:
			s.i++
		}
	}
	return escaped, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number skips a number in JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.v[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.v) {
		return false
	}
	switch c := s.v[s.i]; {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.i < len(s.v) && s.v[s.i] == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.i < len(s.v) && (s.v[s.i] == 'e' || s.v[s.i] == 'E') {
		s.i++
		if s.i < len(s.v) && (s.v[s.i] == '+' || s.v[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits skips one or more decimal digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.v) && s.v[s.i] >= '0' && s.v[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *scanner) literal(word string) bool {
	if len(s.v)-s.i < len(word) || string(s.v[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}
