package profile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestFastPathKeepsExactNames proves the one-pass decoder gives the same
// answer as exact-name lookup: member names that differ in case, escaped
// names, and nested members of the wrong type all take the slow path.
func TestFastPathKeepsExactNames(t *testing.T) {
	d, err := NewDecoder(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	ts := `"timestamp":"2026-11-28T09:00:00Z"`
	for _, c := range []struct {
		name, value, wantID, wantCity string
	}{
		{"exact", `{"type":"page","userId":"u","anonymousId":"a",` + ts + `,"context":{"location":{"city":"Pune"}}}`, "u", "Pune"},
		{"other case is not userId", `{"type":"page","UserId":"u","anonymousId":"a",` + ts + `}`, "anon:a", ""},
		{"both cases: exact wins", `{"type":"page","userId":"u","USERID":"v",` + ts + `}`, "u", ""},
		{"escaped name", `{"type":"page","user\u0049d":"u","anonymousId":"a",` + ts + `}`, "u", ""},
		{"nested other case", `{"type":"page","userId":"u",` + ts + `,"context":{"Location":{"city":"Pune"}}}`, "u", ""},
		{"context not an object", `{"type":"page","userId":"u",` + ts + `,"context":"x"}`, "u", ""},
		{"location not an object", `{"type":"page","userId":"u",` + ts + `,"context":{"location":[1],"timezone":"Asia/Kolkata"}}`, "u", ""},
		{"names inside values", `{"type":"page","userId":"u",` + ts + `,"traits":{"note":"\"UserId\": x"}}`, "u", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev, err := d.Decode([]byte(c.value), now, now)
			if err != nil {
				t.Fatal(err)
			}
			if ev.ProfileID != c.wantID {
				t.Errorf("profile id %q, want %q", ev.ProfileID, c.wantID)
			}
			city := ""
			for _, f := range ev.Fields {
				if f.Name == FieldCity {
					city = f.Value
				}
			}
			if city != c.wantCity {
				t.Errorf("city %q, want %q", city, c.wantCity)
			}
		})
	}
	if _, err := d.Decode([]byte(`{"type":"page",`), now, now); err == nil {
		t.Error("truncated JSON accepted")
	}
}

// TestStringOfMatchesEncodingJSON proves the escape-free shortcut of
// stringOf returns what encoding/json returns.
func TestStringOfMatchesEncodingJSON(t *testing.T) {
	for _, raw := range []string{`""`, `"plain"`, `"ünïcödé ✓"`, `"tab\tescaped"`, `"quote \" inside"`,
		`"\u00e9"`, "\"bad utf8 \xff\"", `"back\\slash"`} {
		got, ok := stringOf([]byte(raw))
		var want string
		err := json.Unmarshal([]byte(raw), &want)
		if !ok || err != nil || got != want {
			t.Errorf("stringOf(%q) = %q, %v; encoding/json gives %q, %v", raw, got, ok, want, err)
		}
	}
}

// checkEnvelope: whenever scanEnvelope decides a value by itself, it
// decides as the reference, slowEnvelope, does. FuzzDecode runs it on every
// input.
func checkEnvelope(t *testing.T, value []byte) {
	t.Helper()
	got, exact := scanEnvelope(value)
	if !exact {
		return // slowEnvelope decides
	}
	want, ok := slowEnvelope(value)
	if !ok {
		t.Fatalf("scanEnvelope accepted %q; encoding/json refuses it", value)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("scanEnvelope(%q) =\n%s\nslowEnvelope gives\n%s", value, dumpEnvelope(got), dumpEnvelope(want))
	}
}

func dumpEnvelope(e *envelope) string {
	b, _ := json.Marshal(e)
	return string(b)
}

// TestScanEnvelopeMatchesReference runs the check over the cases that
// differ between a hand-written reader and encoding/json when either gets
// them wrong, and proves the scanner itself decides the common ones.
func TestScanEnvelopeMatchesReference(t *testing.T) {
	decided := []string{
		`{}`,
		` {"type":"page"} `,
		"{\n\t\"type\" : \"track\" ,\r\n \"event\":\"App Launched\"}",
		`{"type":"page","userId":"u","anonymousId":"a","messageId":"m","timestamp":"2026-11-28T09:00:00Z","originalTimestamp":null,"receivedAt":"x"}`,
		`{"type":"page","context":{"location":{"city":"Pune","country":"IN","latitude":18.52,"longitude":-73.85e0},"timezone":"Asia/Kolkata","traits":{"email":"a@b.io"}}}`,
		`{"type":"page","type":"track"}`,
		`{"context":{"timezone":"A"},"context":{"traits":{}}}`,
		`{"context":{"location":{"city":"A"},"location":"x"}}`,
		`{"context":"x"}`, `{"context":null}`, `{"context":[{"timezone":"A"}]}`, `{"context":{"location":[1]}}`,
		`{"traits":{"n\u0061me":"x","nested":{"a":[1,2,{"b":null}]}}}`,
		`{"userId":"\u00e9\n\"\\\/\b\f\r\t"}`,
		`{"userId":12345,"anonymousId":-0.5e-3,"messageId":true,"event":false}`,
		"{\"userId\":\"\xff\xfe\"}",
		`{"UserId":"u","USERID":"v"}`,
		`{"a":[],"b":{},"c":[[]],"d":""}`,
		`{"a":0,"b":-0,"c":1.5E+10,"d":10}`,
	}
	for _, v := range decided {
		if _, exact := scanEnvelope([]byte(v)); !exact {
			t.Errorf("scanEnvelope handed %q to the slow path", v)
		}
		checkEnvelope(t, []byte(v))
	}
	handed := []string{
		`{"user\u0049d":"u"}`,                        // escaped name: compared after unescaping
		`{"context":{"loc\u0061tion":{"city":"A"}}}`, // also nested
		`{"type":"page",`, `{"type":"page"}x`, `{"type":"page"}}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`,
		`{"a":1e}`, `{"a":+1}`, `{"a":tru}`, `{"a":nul}`, `{"a":truex}`, `{"a" "b"}`, `{"a":1,}`, `{,}`, `{"a":[1,]}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, "{\"a\":\"\x01\"}", `{'a':1}`, `{"a":NaN}`,
		`{"a":` + strings.Repeat("[", maxScanDepth+1) + strings.Repeat("]", maxScanDepth+1) + `}`,
	}
	for _, v := range handed {
		if _, exact := scanEnvelope([]byte(v)); exact {
			t.Errorf("scanEnvelope decided %q by itself", v)
		}
	}
}
