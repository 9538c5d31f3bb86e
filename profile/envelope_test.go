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
	checkObject(t, value)
	// into room that held a full envelope: what value lacks must not
	// show through from the record before
	var buf envelopeBuf
	if _, exact := scanEnvelope([]byte(fullEnvelope), &buf); !exact {
		t.Fatal("the full envelope was not decided by the scanner")
	}
	got, exact := scanEnvelope(value, &buf)
	if !exact {
		return // slowEnvelope decides
	}
	want, err := slowEnvelope(value)
	if err != nil {
		t.Fatalf("scanEnvelope accepted %q; encoding/json refuses it: %v", value, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("scanEnvelope(%q) =\n%s\nslowEnvelope gives\n%s", value, dumpEnvelope(got), dumpEnvelope(want))
	}
}

// fullEnvelope sets every member an envelope reads.
const fullEnvelope = `{"type":"track","event":"e","userId":"u","anonymousId":"a","previousId":"p",` +
	`"messageId":"m","timestamp":"t","originalTimestamp":"o","receivedAt":"r","traits":{"x":1},` +
	`"context":{"traits":{"y":2},"timezone":"z","location":{"city":"c","country":"k","latitude":1,"longitude":2}}}`

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
		if _, exact := scanEnvelope([]byte(v), new(envelopeBuf)); !exact {
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
		if _, exact := scanEnvelope([]byte(v), new(envelopeBuf)); exact {
			t.Errorf("scanEnvelope decided %q by itself", v)
		}
	}
}

// TestInvalidJSONDetail proves the invalid_json detail names what failed
// (contract section 7), never quoting the value, and that what is invalid
// is decided by the reference alone: the one-pass reader hands every such
// value over.
func TestInvalidJSONDetail(t *testing.T) {
	d := newTestDecoder(t, nil)
	deep := `{"a":` + strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1) + `}`
	tests := []struct{ value, detail string }{
		{" \n\t", "value is blank"},
		{`[{"type":"page"}]`, "value is an array, not a JSON object"},
		{`"page"`, "value is a string, not a JSON object"},
		{`-4.2e1`, "value is a number, not a JSON object"},
		{`true`, "value is a boolean, not a JSON object"},
		{`null`, "value is null, not a JSON object"},
		{`[1,`, "value is not a JSON object"},
		{`type=page`, "value is not a JSON object"},
		{"\xef\xbb\xbf{}", "value is not a JSON object"}, // a byte order mark is not JSON
		{`{"type":"page"`, "the value ends inside the object (truncated)"},
		{`{"type":"page","traits":{"a":[1,2`, "the value ends inside the object (truncated)"},
		{deep, "nesting deeper than 10000 levels"},
		{`{"a":NaN}`, "NaN or Infinity is not JSON"},
		{`{"a":-NaN}`, "NaN or Infinity is not JSON"},
		{`{"a":Infinity}`, "NaN or Infinity is not JSON"},
		{`{"a":-Infinity}`, "NaN or Infinity is not JSON"},
		{`{"a":+Infinity}`, "NaN or Infinity is not JSON"},
		{`{"a":[1,NaN]}`, "NaN or Infinity is not JSON"},
		{`{"a":1} {"b":2}`, "a second JSON value follows the object"},
		{`{"a":1}{}`, "a second JSON value follows the object"},
		{"{\"a\":1}\n[]\n", "a second JSON value follows the object"},
		{`{"a":1} 7`, "a second JSON value follows the object"},
		{`{"a":1}}`, "trailing data after the object"},
		{`{"a":1} x`, "trailing data after the object"},
		{`{"a":1} {"b":`, "trailing data after the object"},
		{`{"a":01}`, "invalid JSON at byte offset 6"},
		{`{'a':1}`, "invalid JSON at byte offset 1"},
		{`{"a":1,}`, "invalid JSON at byte offset 7"},
		{`{"a":"\x"}`, "invalid JSON at byte offset 7"},
		{"{\"a\":\"\x01\"}", "invalid JSON at byte offset 6"},
		{`{"a" 1}`, "invalid JSON at byte offset 5"},
	}
	for _, tc := range tests {
		t.Run(tc.detail, func(t *testing.T) {
			_, err := d.Decode([]byte(tc.value), testRecord, testNow)
			r := asRejection(t, err)
			if r == nil || r.Reason != ReasonInvalidJSON || r.Detail != tc.detail {
				t.Fatalf("Decode(%.40q): %v; want invalid_json: %s", tc.value, err, tc.detail)
			}
			if _, exact := scanEnvelope([]byte(tc.value), new(envelopeBuf)); exact {
				t.Fatalf("scanEnvelope decided %.40q by itself", tc.value)
			}
		})
	}
}

// TestDuplicateMembersLastWins proves both readers of the envelope take the
// last of duplicate members, also when one of them is written with an
// escape (names compare after unescaping), and also in nested objects.
func TestDuplicateMembersLastWins(t *testing.T) {
	d := newTestDecoder(t, nil)
	ts := `"timestamp":"` + testTS + `"`
	tests := []struct {
		name, members  string
		profile, city  string
		zone, customer string
		time           int64
	}{
		{"userId twice", `"userId":"a","userId":"b",` + ts, "b", "", "", "b", testTSMs},
		{"escaped userId last", `"userId":"a","user\u0049d":"b",` + ts, "b", "", "", "b", testTSMs},
		{"escaped userId first", `"user\u0049d":"a","userId":"b",` + ts, "b", "", "", "b", testTSMs},
		{"timestamp twice", `"userId":"a","timestamp":"2026-11-28T08:00:00Z",` + ts, "a", "", "", "a", testTSMs},
		{"context twice: the last whole", `"userId":"a",` + ts + `,"context":{"timezone":"Asia/Kolkata"},"context":{"location":{"city":"Pune"}}`,
			"a", "Pune", "", "a", testTSMs},
		{"context twice: the last not an object", `"userId":"a",` + ts + `,"context":{"timezone":"Asia/Kolkata"},"context":"x"`,
			"a", "", "", "a", testTSMs},
		{"city twice in location", `"userId":"a",` + ts + `,"context":{"location":{"city":"A","city":"B"},"timezone":"UTC","timezone":"Asia/Kolkata"}`,
			"a", "B", "Asia/Kolkata", "a", testTSMs},
	}
	for _, tc := range tests {
		for _, path := range []string{"one-pass", "reference"} {
			t.Run(tc.name+"/"+path, func(t *testing.T) {
				v := `{"type":"page",` + tc.members + `}`
				if path == "reference" {
					// an escaped name anywhere hands the value to slowEnvelope
					v = `{"type":"page","p\u0061d":1,` + tc.members + `}`
				}
				_, exact := scanEnvelope([]byte(v), new(envelopeBuf))
				if exact != (path == "one-pass" && !strings.Contains(tc.members, `\u`)) {
					t.Fatalf("scanEnvelope exact = %v on the %s path", exact, path)
				}
				checkEnvelope(t, []byte(v))
				ev, err := d.Decode([]byte(v), testRecord, testNow)
				if err != nil {
					t.Fatal(err)
				}
				f := fieldMap(t, ev)
				if ev.ProfileID != tc.profile || f[FieldCity] != tc.city || f[FieldTimezone] != tc.zone ||
					f[FieldCustomerID] != tc.customer || ev.Time != tc.time {
					t.Fatalf("got profile %q city %q zone %q customer %q time %d; want %q %q %q %q %d", ev.ProfileID,
						f[FieldCity], f[FieldTimezone], f[FieldCustomerID], ev.Time, tc.profile, tc.city, tc.zone, tc.customer, tc.time)
				}
			})
		}
	}
}

// TestEnvelopeReadsPreviousID proves both readers carry an alias's
// previousId.
func TestEnvelopeReadsPreviousID(t *testing.T) {
	for _, v := range []string{`{"type":"alias","previousId":"p-1"}`, `{"type":"alias","previousId":"p-1","p\u0061d":1}`} {
		env, err := decodeEnvelope([]byte(v), new(envelopeBuf))
		if err != nil || string(env.PreviousID) != `"p-1"` {
			t.Errorf("%s: previousId %s, %v", v, env.PreviousID, err)
		}
		checkEnvelope(t, []byte(v))
	}
}

// checkObject compares objectOf's scanner path with encoding/json's on
// value, whenever the scanner decides.
func checkObject(t *testing.T, value []byte) {
	t.Helper()
	got, ok := scanObject(value)
	if !ok {
		return // objectOfJSON decides
	}
	want := objectOfJSON(value)
	if want == nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("scanObject(%q) = %q; encoding/json gives %q", value, got, want)
	}
}

func TestScanObjectMatchesReference(t *testing.T) {
	decided := []string{`{}`, `{"a":1}`, `{"a":1,"a":"x"}`, `{"a" : {"b":[1,2]} , "c":null} `, `{"é":"\u00e9"}`}
	for _, v := range decided {
		if _, ok := scanObject([]byte(v)); !ok {
			t.Errorf("scanObject does not decide %q", v)
		}
		checkObject(t, []byte(v))
	}
	undecided := []string{`{"\u0061":1}`, "{\"\xff\":1}", `{"a":1}x`, `{"a":}`, `{"a":1`, `[1]`, `"s"`, `null`, ``, ` {"a":1}`}
	for _, v := range undecided {
		if _, ok := scanObject([]byte(v)); ok {
			t.Errorf("scanObject decides %q; encoding/json must", v)
		}
		if got, want := objectOf([]byte(v)), objectOfJSON([]byte(v)); !reflect.DeepEqual(got, want) {
			t.Errorf("objectOf(%q) = %q, want %q", v, got, want)
		}
	}
}
