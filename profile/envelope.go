package profile

import (
	"bytes"
	"encoding/json"
	"errors"
)

// envelope holds the parts of a Segment Spec event the rules read, still
// as raw JSON. A nil or "null" member means absent.
type envelope struct {
	Type              json.RawMessage  `json:"type"`
	Event             json.RawMessage  `json:"event"`
	UserID            json.RawMessage  `json:"userId"`
	AnonymousID       json.RawMessage  `json:"anonymousId"`
	MessageID         json.RawMessage  `json:"messageId"`
	Timestamp         json.RawMessage  `json:"timestamp"`
	OriginalTimestamp json.RawMessage  `json:"originalTimestamp"`
	ReceivedAt        json.RawMessage  `json:"receivedAt"`
	Traits            json.RawMessage  `json:"traits"`
	Context           *contextEnvelope `json:"context"`
}

type contextEnvelope struct {
	Traits   json.RawMessage   `json:"traits"`
	Location *locationEnvelope `json:"location"`
	Timezone json.RawMessage   `json:"timezone"`
}

type locationEnvelope struct {
	City      json.RawMessage `json:"city"`
	Country   json.RawMessage `json:"country"`
	Latitude  json.RawMessage `json:"latitude"`
	Longitude json.RawMessage `json:"longitude"`
}

// envelopeKeys are the member names the envelope reads, at any depth.
var envelopeKeys = [...]string{"type", "event", "userId", "anonymousId", "messageId", "timestamp",
	"originalTimestamp", "receivedAt", "traits", "context", "location", "timezone",
	"city", "country", "latitude", "longitude"}

// decodeEnvelope parses value, which starts with '{'. It reports false when
// value is not a JSON object.
//
// The fast path decodes straight into the envelope: one pass, no maps. It
// is exact only when no member name differs from ours in case alone
// (encoding/json matches names case-insensitively) and every nested member
// we read is an object or null; otherwise the slow path decodes generic
// maps and picks members by exact name. Profiling showed the generic path
// spending most of its time validating the same bytes again for each
// nested object.
func decodeEnvelope(value []byte) (*envelope, bool) {
	var env envelope
	err := json.Unmarshal(value, &env)
	if err == nil && caseExact(value) {
		return &env, true
	}
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return nil, false // not JSON at all
	}
	return slowEnvelope(value)
}

// caseExact reports whether no member name in value differs from one of
// ours in case alone, in one pass over the bytes without allocating. A name
// with an escape sequence is not checked and sends the event down the slow
// path, since encoding/json compares names after unescaping.
func caseExact(v []byte) bool {
	for i := 0; i < len(v); i++ {
		if v[i] != '"' {
			continue
		}
		j := i + 1
		escaped := false
		for j < len(v) && v[j] != '"' {
			if v[j] == '\\' {
				escaped = true
				j++
			}
			j++
		}
		if j >= len(v) {
			return true
		}
		k := j + 1
		for k < len(v) && (v[k] == ' ' || v[k] == '\t' || v[k] == '\n' || v[k] == '\r') {
			k++
		}
		if k < len(v) && v[k] == ':' && !nameExact(v[i+1:j], escaped) {
			return false
		}
		i = j
	}
	return true
}

// nameExact reports whether a member name is either one of ours exactly or
// none of ours in any case.
func nameExact(name []byte, escaped bool) bool {
	if escaped {
		return false
	}
	if len(name) < 4 || len(name) > len("originalTimestamp") {
		return true
	}
	for _, k := range envelopeKeys {
		if len(k) == len(name) && bytes.EqualFold(name, []byte(k)) {
			return string(name) == k
		}
	}
	return true
}

// slowEnvelope picks members by exact name from generic maps; a nested
// member that is not an object counts as absent.
func slowEnvelope(value []byte) (*envelope, bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(value, &top); err != nil {
		return nil, false
	}
	env := &envelope{
		Type: top["type"], Event: top["event"], UserID: top["userId"], AnonymousID: top["anonymousId"],
		MessageID: top["messageId"], Timestamp: top["timestamp"], OriginalTimestamp: top["originalTimestamp"],
		ReceivedAt: top["receivedAt"], Traits: top["traits"],
	}
	if ctx := objectOf(top["context"]); ctx != nil {
		env.Context = &contextEnvelope{Traits: ctx["traits"], Timezone: ctx["timezone"]}
		if loc := objectOf(ctx["location"]); loc != nil {
			env.Context.Location = &locationEnvelope{City: loc["city"], Country: loc["country"],
				Latitude: loc["latitude"], Longitude: loc["longitude"]}
		}
	}
	return env, true
}
