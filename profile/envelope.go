package profile

import (
	"encoding/json"
)

// envelope holds the parts of a Segment Spec event the rules read, still
// as raw JSON. A nil or "null" member means absent.
type envelope struct {
	Type              json.RawMessage
	Event             json.RawMessage
	UserID            json.RawMessage
	AnonymousID       json.RawMessage
	MessageID         json.RawMessage
	Timestamp         json.RawMessage
	OriginalTimestamp json.RawMessage
	ReceivedAt        json.RawMessage
	Traits            json.RawMessage
	Context           *contextEnvelope
}

type contextEnvelope struct {
	Traits   json.RawMessage
	Location *locationEnvelope
	Timezone json.RawMessage
}

type locationEnvelope struct {
	City      json.RawMessage
	Country   json.RawMessage
	Latitude  json.RawMessage
	Longitude json.RawMessage
}

// decodeEnvelope parses value, which starts with '{'. It reports false when
// value is not a JSON object.
//
// scanEnvelope (scan.go) reads the envelope in one validating pass; what it
// cannot decide exactly as slowEnvelope does — escaped member names, deep
// nesting, invalid input — slowEnvelope decides.
func decodeEnvelope(value []byte) (*envelope, bool) {
	if env, exact := scanEnvelope(value); exact {
		return env, true
	}
	return slowEnvelope(value)
}

// slowEnvelope picks members by exact name from generic maps; a nested
// member that is not an object counts as absent. It is the reference for
// scanEnvelope.
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
