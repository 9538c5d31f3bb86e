package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// envelope holds the parts of a Segment Spec event the rules read, still
// as raw JSON. A nil or "null" member means absent.
type envelope struct {
	Type              json.RawMessage
	Event             json.RawMessage
	UserID            json.RawMessage
	AnonymousID       json.RawMessage
	PreviousID        json.RawMessage // of an alias
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

// decodeEnvelope parses value, which starts with '{'. When value is not
// a JSON object its error names what failed (never a value): it is the
// detail of the invalid_json rejection.
//
// scanEnvelope (scan.go) reads the envelope in one validating pass; what it
// cannot decide exactly as slowEnvelope does — escaped member names, deep
// nesting, invalid input — slowEnvelope decides. So which values are
// invalid is decided by encoding/json alone. Of duplicate members the last
// wins, in both, and member names are compared after unescaping
// ("user\u0049d" is userId), as encoding/json does.
func decodeEnvelope(value []byte, buf *envelopeBuf) (*envelope, error) {
	if env, exact := scanEnvelope(value, buf); exact {
		return env, nil
	}
	return slowEnvelope(value)
}

// envelopeBuf is the room scanEnvelope reads an envelope into, its
// context and location beside it. Decode takes one from envelopeBufs and
// gives it back when done: an envelope made afresh for every record was
// 10% of the bytes profiled allocated in a pipeline run, and its nested
// members 6% more.
type envelopeBuf struct {
	env envelope
	ctx contextEnvelope
	loc locationEnvelope
}

var envelopeBufs = sync.Pool{New: func() any { return new(envelopeBuf) }}

// slowEnvelope picks members by exact name from generic maps; a nested
// member that is not an object counts as absent. It is the reference for
// scanEnvelope.
func slowEnvelope(value []byte) (*envelope, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(value, &top); err != nil {
		return nil, jsonProblem(value, err)
	}
	env := &envelope{
		Type: top["type"], Event: top["event"], UserID: top["userId"], AnonymousID: top["anonymousId"],
		PreviousID: top["previousId"], MessageID: top["messageId"], Timestamp: top["timestamp"],
		OriginalTimestamp: top["originalTimestamp"], ReceivedAt: top["receivedAt"], Traits: top["traits"],
	}
	if ctx := objectOfJSON(top["context"]); ctx != nil {
		env.Context = &contextEnvelope{Traits: ctx["traits"], Timezone: ctx["timezone"]}
		if loc := objectOfJSON(ctx["location"]); loc != nil {
			env.Context.Location = &locationEnvelope{City: loc["city"], Country: loc["country"],
				Latitude: loc["latitude"], Longitude: loc["longitude"]}
		}
	}
	return env, nil
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// jsonProblem turns encoding/json's error for value (which starts with '{'
// after whitespace) into words that name what failed and quote nothing of
// the value: encoding/json's own messages quote the offending character.
func jsonProblem(value []byte, err error) error {
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return errors.New("value is not a JSON object")
	}
	msg := syn.Error()
	at := int(syn.Offset) - 1 // the byte that failed
	switch {
	case strings.Contains(msg, "unexpected end of JSON input"):
		return errors.New("the value ends inside the object (truncated)")
	case strings.Contains(msg, "exceeded max depth"):
		return fmt.Errorf("nesting deeper than %d levels", maxJSONDepth)
	case at < 0 || at >= len(value):
		return errors.New("invalid JSON")
	case strings.Contains(msg, "after top-level value"):
		var second json.RawMessage
		if json.NewDecoder(bytes.NewReader(value[at:])).Decode(&second) == nil {
			return errors.New("a second JSON value follows the object")
		}
		return errors.New("trailing data after the object")
	}
	for _, p := range [...]int{at, at - 1} {
		if p < 0 {
			continue
		}
		rest := value[p:]
		for _, word := range [...]string{"NaN", "Infinity", "-Infinity", "+Infinity", "-NaN", "+NaN"} {
			if bytes.HasPrefix(rest, []byte(word)) {
				return errors.New("NaN or Infinity is not JSON")
			}
		}
	}
	return fmt.Errorf("invalid JSON at byte offset %d", at)
}
