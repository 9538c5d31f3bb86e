package profile

import (
	"encoding/json"
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
