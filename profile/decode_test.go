package profile

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDecodeCheckOrder proves the order of contract section 1: size, then
// "is it a JSON object", then kind (ignored kinds skipped with no further
// checks), then identity, then time; and that a nil or empty value is a tombstone
// (kafka-go hands both as nil; contract section 1 calls both a tombstone).
func TestDecodeCheckOrder(t *testing.T) {
	d := newTestDecoder(t, func(c *Config) { c.MaxEventBytes = 200 })
	pad := strings.Repeat(" ", 200)
	tests := []struct {
		name   string
		value  []byte
		reason string // rejection reason; "" when accepted or skipped
		skip   string // skip reason when skipped
		kind   Kind
	}{
		{"tombstone is skipped", nil, "", SkipTombstone, KindIgnored},
		{"size before JSON: oversized garbage is too_large", []byte(strings.Repeat("x", 201)), ReasonTooLarge, "", 0},
		{"size before kind: oversized valid event is too_large", []byte(`{"type":"page","userId":"u1"}` + pad), ReasonTooLarge, "", 0},
		{"exactly the limit is accepted", []byte((`{"type":"page","userId":"u1"}` + pad)[:200]), "", "", KindWebVisit},
		{"empty non-nil value is a tombstone too", []byte{}, "", SkipTombstone, KindIgnored},
		{"blank value", []byte("  \n"), ReasonInvalidJSON, "", 0},
		{"array", []byte(`[{"type":"page","userId":"u1"}]`), ReasonInvalidJSON, "", 0},
		{"string", []byte(`"page"`), ReasonInvalidJSON, "", 0},
		{"number", []byte(`42`), ReasonInvalidJSON, "", 0},
		{"JSON null", []byte(`null`), ReasonInvalidJSON, "", 0},
		{"boolean", []byte(`true`), ReasonInvalidJSON, "", 0},
		{"truncated object", []byte(`{"type":"page","userId":"u1"`), ReasonInvalidJSON, "", 0},
		{"trailing data after object", []byte(`{"type":"page","userId":"u1"} {}`), ReasonInvalidJSON, "", 0},
		{"not JSON at all", []byte(`type=page`), ReasonInvalidJSON, "", 0},
		{"leading whitespace before object is fine", []byte(" \n{\"type\":\"page\",\"userId\":\"u1\"}"), "", "", KindWebVisit},
		{"JSON before kind: broken screen event is invalid_json", []byte(`{"type":"screen",`), ReasonInvalidJSON, "", 0},
		{"kind before identity and time: screen without identity and bad time is skipped",
			[]byte(`{"type":"screen","timestamp":"not a time"}`), "", SkipUnhandledType, KindIgnored},
		{"kind before identity: other track event without identity is skipped",
			[]byte(`{"type":"track","event":"Button Clicked","userId":"null","timestamp":1}`), "", SkipNotLaunchEvent, KindIgnored},
		{"identity before time: page without identity and bad time is missing_identity",
			[]byte(`{"type":"page","timestamp":"not a time"}`), ReasonMissingIdentity, "", 0},
		{"time last: page with identity and bad time is bad_timestamp",
			[]byte(`{"type":"page","userId":"u1","timestamp":"not a time"}`), ReasonBadTimestamp, "", 0},
		{"size before all: oversized alias is too_large", []byte(`{"type":"alias","userId":"u1","previousId":"p1"}` + pad), ReasonTooLarge, "", 0},
		{"JSON before kind: broken alias is invalid_json", []byte(`{"type":"alias","userId":"u1",`), ReasonInvalidJSON, "", 0},
		{"identity before time: alias without previousId and bad time is missing_identity",
			[]byte(`{"type":"alias","userId":"u1","timestamp":"not a time"}`), ReasonMissingIdentity, "", 0},
		{"time last: alias with identity and bad time is bad_timestamp",
			[]byte(`{"type":"alias","userId":"u1","previousId":"p1","timestamp":"not a time"}`), ReasonBadTimestamp, "", 0},
		{"alias with identity and time is applied", []byte(`{"type":"alias","userId":"u1","previousId":"p1"}`), "", "", KindAlias},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := d.Decode(tc.value, testRecord, testNow)
			rej := asRejection(t, err)
			if tc.reason != "" {
				if rej == nil || rej.Reason != tc.reason {
					t.Fatalf("got event %+v, err %v; want rejection %s", ev, err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected rejection %v", err)
			}
			if ev.Kind != tc.kind || ev.SkipReason != tc.skip {
				t.Fatalf("got kind %v skip %q, want %v %q", ev.Kind, ev.SkipReason, tc.kind, tc.skip)
			}
		})
	}
}

// TestDecodeKinds proves the kind table of section 1, including configured
// launch names.
func TestDecodeKinds(t *testing.T) {
	def := newTestDecoder(t, nil)
	custom := newTestDecoder(t, func(c *Config) { c.LaunchEvents = []string{"Game Started"} })
	tests := []struct {
		name string
		d    *Decoder
		body string // JSON members besides identity and time
		kind Kind
		skip string
	}{
		{"Application Opened is a launch", def, `"type":"track","event":"Application Opened"`, KindAppLaunch, ""},
		{"App Launched is a launch", def, `"type":"track","event":"App Launched"`, KindAppLaunch, ""},
		{"other track event", def, `"type":"track","event":"Order Completed"`, KindIgnored, SkipNotLaunchEvent},
		{"launch names are exact: case differs", def, `"type":"track","event":"application opened"`, KindIgnored, SkipNotLaunchEvent},
		{"launch names are exact: padded", def, `"type":"track","event":"App Launched "`, KindIgnored, SkipNotLaunchEvent},
		{"track without event", def, `"type":"track"`, KindIgnored, SkipNotLaunchEvent},
		{"track with non-string event", def, `"type":"track","event":7`, KindIgnored, SkipNotLaunchEvent},
		{"page is a web visit", def, `"type":"page","name":"Home"`, KindWebVisit, ""},
		{"identify", def, `"type":"identify"`, KindIdentify, ""},
		{"screen is ignored", def, `"type":"screen","name":"Home"`, KindIgnored, SkipUnhandledType},
		{"group is ignored", def, `"type":"group","groupId":"g1"`, KindIgnored, SkipUnhandledType},
		{"alias", def, `"type":"alias","previousId":"p1"`, KindAlias, ""},
		{"alias is case-sensitive", def, `"type":"Alias","previousId":"p1"`, KindIgnored, SkipUnhandledType},
		{"type is case-sensitive", def, `"type":"Page"`, KindIgnored, SkipUnhandledType},
		{"missing type", def, `"event":"Application Opened"`, KindIgnored, SkipUnhandledType},
		{"non-string type", def, `"type":1,"event":"Application Opened"`, KindIgnored, SkipUnhandledType},
		{"null type", def, `"type":null`, KindIgnored, SkipUnhandledType},
		{"configured launch name", custom, `"type":"track","event":"Game Started"`, KindAppLaunch, ""},
		{"default name not launch when reconfigured", custom, `"type":"track","event":"Application Opened"`, KindIgnored, SkipNotLaunchEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := fmt.Sprintf(`{%s,"userId":"u1","timestamp":%q}`, tc.body, testTS)
			ev, err := tc.d.Decode([]byte(v), testRecord, testNow)
			if err != nil {
				t.Fatalf("unexpected rejection %v", err)
			}
			if ev.Kind != tc.kind || ev.SkipReason != tc.skip {
				t.Fatalf("got kind %v skip %q, want %v %q", ev.Kind, ev.SkipReason, tc.kind, tc.skip)
			}
			if ev.Kind == KindIgnored && (ev.ProfileID != "" || len(ev.Fields) != 0) {
				t.Fatalf("ignored event carries data: %+v", ev)
			}
			if ev.Kind != KindIgnored && ev.SkipReason != "" {
				t.Fatalf("applied event has a skip reason %q", ev.SkipReason)
			}
		})
	}
}

// TestDecodeIdentity proves section 2: which userId and anonymousId values
// are usable and the profile id that results.
func TestDecodeIdentity(t *testing.T) {
	d := newTestDecoder(t, nil)
	long := strings.Repeat("u", MaxIDBytes)
	tests := []struct {
		name     string
		userID   string // raw JSON; "" = absent
		anonID   string // raw JSON; "" = absent
		want     string // profile id; "" = missing_identity
		customer string // expected customer_id field ("" = unset)
		anon     string // expected anonymous_id field ("" = unset)
	}{
		{"userId string", `"user-1"`, "", "user-1", "user-1", ""},
		{"userId is trimmed", `"  user-1\t"`, "", "user-1", "user-1", ""},
		{"userId wins over anonymousId", `"user-1"`, `"a-1"`, "user-1", "user-1", "a-1"},
		{"integer userId", `12345`, "", "12345", "12345", ""},
		{"negative integer userId", `-42`, "", "-42", "-42", ""},
		{"float userId unusable", `12.5`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"exponent userId unusable", `1e3`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"boolean userId unusable", `true`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"object userId unusable", `{"id":"u"}`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"null userId unusable", `null`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"empty userId unusable", `""`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"blank userId unusable", `"   "`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"256 bytes usable", `"` + long + `"`, "", long, long, ""},
		{"257 bytes unusable", `"` + long + `x"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"256 bytes after trimming usable", `"  ` + long + `  "`, "", long, long, ""},
		{"open brace", `"ab{c"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"close brace", `"ab}c"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"NUL", `"a\u0000b"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"newline inside", `"a\nb"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"DEL", `"a\u007fb"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"C1 control", `"a\u0085b"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"non-ASCII letters usable", `"jürgen-7"`, "", "jürgen-7", "jürgen-7", ""},
		{"junk null", `"null"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk NULL any case", `"NULL"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk undefined", `"Undefined"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk anonymous", `"ANONYMOUS"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk guest", `"Guest"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk none", `"None"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk nan", `"NaN"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk 0 string", `"0"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk 0 integer", `0`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk -1 string", `"-1"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk -1 integer", `-1`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk [object Object]", `"[object Object]"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"junk after trimming", `" guest "`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"all zeros 000", `"000"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"all zeros long", `"0000000000"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"zero -0 string", `"-0"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"zero +0 string", `"+0"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"zero 0.0 string", `"0.0"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"zero -000.000 string", `"-000.000"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"zero +00.0 trimmed", `" +00.0 "`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"zero JSON integer -0", `-0`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"zeros then digit usable", `"0001"`, "", "0001", "0001", ""},
		{"0.01 is not zero", `"0.01"`, "", "0.01", "0.01", ""},
		{"0. is not the zero pattern", `"0."`, "", "0.", "0.", ""},
		{".0 is not the zero pattern", `".0"`, "", ".0", ".0", ""},
		{"+-0 is not the zero pattern", `"+-0"`, "", "+-0", "+-0", ""},
		{"0e0 is not the zero pattern", `"0e0"`, "", "0e0", "0e0", ""},
		{"invalid UTF-8 ff fe", "\"\xff\xfeuser\"", `"a-1"`, "anon:a-1", "", "a-1"},
		{"invalid UTF-8 fe ff", "\"\xfe\xffuser\"", `"a-1"`, "anon:a-1", "", "a-1"},
		{"invalid UTF-8 truncated sequence", "\"user\xc3\"", `"a-1"`, "anon:a-1", "", "a-1"},
		{"invalid UTF-8 overlong NUL", "\"user\xc0\x80\"", `"a-1"`, "anon:a-1", "", "a-1"},
		{"invalid UTF-8 beside an escape", "\"\\n\xffuser\"", `"a-1"`, "anon:a-1", "", "a-1"},
		{"escaped lone high surrogate", `"\ud800user"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"escaped lone low surrogate", `"user\udc00"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"escaped high surrogate at the end", `"user\ud83d"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"escaped high surrogate then a letter escape", `"\ud83d\u0041"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"escaped surrogates swapped", `"\ude00\ud83d"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"escaped surrogate pair usable", `"\ud83d\ude00user"`, "", "\U0001F600user", "\U0001F600user", ""},
		{"escaped backslash before u is no escape", `"a\\ud800"`, "", `a\ud800`, `a\ud800`, ""},
		{"escaped U+FFFD is a character like any other", `"\ufffduser"`, "", "\ufffduser", "\ufffduser", ""},
		{"sent U+FFFD is a character like any other", "\"\xef\xbf\xbduser\"", "", "\ufffduser", "\ufffduser", ""},
		{"invalid UTF-8 anonymousId", "", "\"\xff\xfea\"", "", "", ""},
		{"invalid UTF-8 anonymousId beside a userId", `"u-1"`, "\"\xff\xfea\"", "u-1", "u-1", ""},
		{"zero anonymousId -0", "", `-0`, "", "", ""},
		{"zero anonymousId 0.0", "", `"0.0"`, "", "", ""},
		{"userId starting anon: falls back", `"anon:123"`, `"a-1"`, "anon:a-1", "", "a-1"},
		{"anon: prefix is case-sensitive", `"ANON:123"`, "", "ANON:123", "ANON:123", ""},
		{"anonymousId only", "", `"a-1"`, "anon:a-1", "", "a-1"},
		{"anonymousId trimmed", "", `" a-1 "`, "anon:a-1", "", "a-1"},
		{"integer anonymousId", "", `777`, "anon:777", "", "777"},
		{"anonymousId may start with anon:", "", `"anon:x"`, "anon:anon:x", "", "anon:x"},
		{"junk anonymousId", "", `"undefined"`, "", "", ""},
		{"zeros anonymousId", "", `"00"`, "", "", ""},
		{"both junk", `"null"`, `"guest"`, "", "", ""},
		{"both absent", "", "", "", "", ""},
		{"both null", `null`, `null`, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := `{"type":"page","timestamp":"` + testTS + `"`
			if tc.userID != "" {
				v += `,"userId":` + tc.userID
			}
			if tc.anonID != "" {
				v += `,"anonymousId":` + tc.anonID
			}
			v += "}"
			ev, err := d.Decode([]byte(v), testRecord, testNow)
			rej := asRejection(t, err)
			if tc.want == "" {
				if rej == nil || rej.Reason != ReasonMissingIdentity {
					t.Fatalf("got %+v, %v; want missing_identity", ev, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected rejection %v", err)
			}
			if ev.ProfileID != tc.want {
				t.Fatalf("profile id %q, want %q", ev.ProfileID, tc.want)
			}
			f := fieldMap(t, ev)
			if f[FieldCustomerID] != tc.customer || f[FieldAnonymousID] != tc.anon {
				t.Fatalf("customer_id %q anonymous_id %q, want %q %q", f[FieldCustomerID], f[FieldAnonymousID], tc.customer, tc.anon)
			}
		})
	}
}

// TestInvalidUTF8IDsAreNeverOneProfile proves the probe's case of bug 2:
// "\xff\xfeuser" and "\xfe\xffuser" both read as "\uFFFD\uFFFDuser" when
// repaired; neither is usable, so they never become one profile.
func TestInvalidUTF8IDsAreNeverOneProfile(t *testing.T) {
	d := newTestDecoder(t, nil)
	for _, id := range []string{"\xff\xfeuser", "\xfe\xffuser"} {
		for _, member := range []string{"userId", "anonymousId"} {
			v := `{"type":"page","` + member + `":"` + id + `","timestamp":"` + testTS + `"}`
			ev, err := d.Decode([]byte(v), testRecord, testNow)
			if r := asRejection(t, err); r == nil || r.Reason != ReasonMissingIdentity {
				t.Errorf("%s %q: got %+v, %v; want missing_identity", member, id, ev, err)
			}
		}
	}
}

// TestValidateProfileID proves the readers' rule: ids the decoder can
// write pass, impossible ones are refused with the reason; the junk list
// and zero values do not apply (they decide only what is written).
func TestValidateProfileID(t *testing.T) {
	long := strings.Repeat("x", MaxIDBytes)
	tests := []struct{ id, err string }{
		{"u-1", ""},
		{"anon:a-1", ""},
		{"anon:anon:a-1", ""},
		{long, ""},
		{"anon:" + long, ""},
		{"jürgen \U0001F600", ""},
		{"\ufffduser", ""},
		{"guest", ""},
		{"-0", ""},
		{"", "empty"},
		{"anon:", "empty"},
		{long + "x", "longer than 256 bytes"},
		{"anon:" + long + "x", "longer than 256 bytes"},
		{"\xff\xfeuser", "not valid UTF-8"},
		{"anon:\xfe\xffuser", "not valid UTF-8"},
		{"u\xed\xa0\x80", "not valid UTF-8"}, // a surrogate encoded as UTF-8
		{"{u}", "holds a brace or a control character"},
		{"a\tb", "holds a brace or a control character"},
		{"a\u0085b", "holds a brace or a control character"},
	}
	for _, tc := range tests {
		err := ValidateProfileID(tc.id)
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("ValidateProfileID(%q) = %v, want %q", tc.id, err, tc.err)
		}
	}
}

// TestDecodeLinks proves which events link an anonymous id to a user
// (contract section 2a): an applied launch, visit or identify with both a
// usable userId and a usable anonymousId. The profile stays the user's.
func TestDecodeLinks(t *testing.T) {
	d := newTestDecoder(t, nil)
	tests := []struct {
		name, body      string // members besides the time
		profile, linked string
	}{
		{"visit with both", `"type":"page","userId":"u-1","anonymousId":"a-1"`, "u-1", "a-1"},
		{"launch with both", `"type":"track","event":"App Launched","userId":"u-1","anonymousId":"a-1"`, "u-1", "a-1"},
		{"identify with both", `"type":"identify","userId":"u-1","anonymousId":"a-1"`, "u-1", "a-1"},
		{"integer ids", `"type":"page","userId":42,"anonymousId":7`, "42", "7"},
		{"trimmed anonymous id", `"type":"page","userId":"u-1","anonymousId":" a-1 "`, "u-1", "a-1"},
		{"anonymous id that starts with anon:", `"type":"page","userId":"u-1","anonymousId":"anon:a-1"`, "u-1", "anon:a-1"},
		{"user id alone", `"type":"page","userId":"u-1"`, "u-1", ""},
		{"anonymous id alone", `"type":"page","anonymousId":"a-1"`, "anon:a-1", ""},
		{"junk user id", `"type":"page","userId":"guest","anonymousId":"a-1"`, "anon:a-1", ""},
		{"junk anonymous id", `"type":"page","userId":"u-1","anonymousId":"undefined"`, "u-1", ""},
		{"zero anonymous id", `"type":"page","userId":"u-1","anonymousId":"-0"`, "u-1", ""},
		{"invalid UTF-8 anonymous id", "\"type\":\"page\",\"userId\":\"u-1\",\"anonymousId\":\"a\xff\"", "u-1", ""},
		{"previousId of a visit is not read", `"type":"page","userId":"u-1","previousId":"p-1"`, "u-1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := `{` + tc.body + `,"timestamp":"` + testTS + `"}`
			ev, err := d.Decode([]byte(v), testRecord, testNow)
			if err != nil {
				t.Fatalf("unexpected rejection %v", err)
			}
			if ev.ProfileID != tc.profile || ev.LinkAnonID != tc.linked {
				t.Fatalf("profile %q linking %q, want %q linking %q", ev.ProfileID, ev.LinkAnonID, tc.profile, tc.linked)
			}
		})
	}
	for _, v := range []string{
		`{"type":"screen","userId":"u-1","anonymousId":"a-1"}`,
		`{"type":"track","event":"Order Completed","userId":"u-1","anonymousId":"a-1"}`,
	} {
		if ev, err := d.Decode([]byte(v), testRecord, testNow); err != nil || ev.Kind != KindIgnored || ev.LinkAnonID != "" {
			t.Errorf("skipped kind %s links: %+v, %v", v, ev, err)
		}
	}
	_, err := d.Decode([]byte(`{"type":"page","userId":"u-1","anonymousId":"a-1","timestamp":"bad"}`), testRecord, testNow)
	if r := asRejection(t, err); r == nil || r.Reason != ReasonBadTimestamp {
		t.Errorf("dead-lettered record: %v, want bad_timestamp and no event", err)
	}
}

// TestDecodeAlias proves the alias kind (contract sections 1 and 2a): it
// links previousId (always an anonymous id) to userId, sets no field, and
// without either usable id it is missing_identity naming which one; its
// time is checked like any event's.
func TestDecodeAlias(t *testing.T) {
	d := newTestDecoder(t, nil)
	tests := []struct {
		name, body      string // members besides type
		profile, linked string
		messageID       string
		time            int64
		reason, detail  string // rejection reason and a word of its detail
	}{
		{"user and previous id", `"userId":"u-1","previousId":"p-1","timestamp":"` + testTS + `"`, "u-1", "p-1", "", testTSMs, "", ""},
		{"trimmed, integer ids", `"userId":" u-1 ","previousId":12,"timestamp":"` + testTS + `"`, "u-1", "12", "", testTSMs, "", ""},
		{"previousId that starts with anon: is an anonymous id", `"userId":"u-1","previousId":"anon:p-1"`, "u-1", "anon:p-1", "", testRecord.UnixMilli(), "", ""},
		{"messageId read", `"userId":"u-1","previousId":"p-1","messageId":" m-9 "`, "u-1", "p-1", "m-9", testRecord.UnixMilli(), "", ""},
		{"no time: record time", `"userId":"u-1","previousId":"p-1"`, "u-1", "p-1", "", testRecord.UnixMilli(), "", ""},
		{"traits, context and anonymousId set nothing",
			`"userId":"u-1","previousId":"p-1","anonymousId":"a-1","traits":{"email":"x@y.io","plan":"gold","bad":[1]},"context":{"timezone":"Asia/Kolkata","location":{"city":"Pune"}}`,
			"u-1", "p-1", "", testRecord.UnixMilli(), "", ""},
		{"previousId equal to userId", `"userId":"u-1","previousId":"u-1"`, "u-1", "u-1", "", testRecord.UnixMilli(), "", ""},
		{"no previousId", `"userId":"u-1","anonymousId":"a-1"`, "", "", "", 0, ReasonMissingIdentity, "previousId"},
		{"junk previousId", `"userId":"u-1","previousId":"null"`, "", "", "", 0, ReasonMissingIdentity, "previousId"},
		{"zero previousId", `"userId":"u-1","previousId":-0`, "", "", "", 0, ReasonMissingIdentity, "previousId"},
		{"braces in previousId", `"userId":"u-1","previousId":"{p}"`, "", "", "", 0, ReasonMissingIdentity, "previousId"},
		{"invalid UTF-8 previousId", "\"userId\":\"u-1\",\"previousId\":\"\xff\xfep\"", "", "", "", 0, ReasonMissingIdentity, "previousId"},
		{"lone surrogate previousId", `"userId":"u-1","previousId":"\udfffp"`, "", "", "", 0, ReasonMissingIdentity, "previousId"},
		{"no userId", `"previousId":"p-1","anonymousId":"a-1"`, "", "", "", 0, ReasonMissingIdentity, "userId"},
		{"userId that starts with anon:", `"userId":"anon:u-1","previousId":"p-1"`, "", "", "", 0, ReasonMissingIdentity, "userId"},
		{"junk userId", `"userId":"0.0","previousId":"p-1"`, "", "", "", 0, ReasonMissingIdentity, "userId"},
		{"neither", `"userId":null`, "", "", "", 0, ReasonMissingIdentity, "neither"},
		{"bad time", `"userId":"u-1","previousId":"p-1","timestamp":"soon"`, "", "", "", 0, ReasonBadTimestamp, "timestamp"},
		{"time out of range", `"userId":"u-1","previousId":"p-1","timestamp":"1999-01-01T00:00:00Z"`, "", "", "", 0, ReasonTimestampOutOfRange, "2000"},
		{"identity before time", `"userId":"u-1","timestamp":"soon"`, "", "", "", 0, ReasonMissingIdentity, "previousId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := `{"type":"alias",` + tc.body + `}`
			ev, err := d.Decode([]byte(v), testRecord, testNow)
			if tc.reason != "" {
				r := asRejection(t, err)
				if r == nil || r.Reason != tc.reason || !strings.Contains(r.Detail, tc.detail) {
					t.Fatalf("got %+v, %v; want %s naming %q", ev, err, tc.reason, tc.detail)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected rejection %v", err)
			}
			want := Event{Kind: KindAlias, ProfileID: tc.profile, LinkAnonID: tc.linked, Time: tc.time, MessageID: tc.messageID}
			if !reflect.DeepEqual(ev, want) {
				t.Fatalf("got %+v\nwant %+v", ev, want)
			}
		})
	}
}

// TestDecodeJunkIDsConfigurable proves the junk list is configuration,
// compared case-insensitively, while all-zero strings stay junk.
func TestDecodeJunkIDsConfigurable(t *testing.T) {
	d := newTestDecoder(t, func(c *Config) { c.JunkIDs = []string{" Test-User "} })
	tests := []struct {
		userID string
		want   string
	}{
		{"test-user", "anon:a-1"},
		{"TEST-USER", "anon:a-1"},
		{"guest", "guest"}, // no longer junk
		{"000", "anon:a-1"},
	}
	for _, tc := range tests {
		v := fmt.Sprintf(`{"type":"page","userId":%q,"anonymousId":"a-1","timestamp":%q}`, tc.userID, testTS)
		ev, err := d.Decode([]byte(v), testRecord, testNow)
		if err != nil || ev.ProfileID != tc.want {
			t.Errorf("userId %q: got %q, %v; want %q", tc.userID, ev.ProfileID, err, tc.want)
		}
	}
}

// TestDecodeTime proves section 3: which member decides, parsing, cutting to
// milliseconds, the record-time fallback and the accepted range.
func TestDecodeTime(t *testing.T) {
	d := newTestDecoder(t, nil)
	ms := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMilli()
	}
	maxOK := testNow.Add(24 * time.Hour)
	tests := []struct {
		name   string
		times  string // JSON members
		record time.Time
		want   int64
		reason string
	}{
		{"timestamp", `"timestamp":"2026-11-28T08:00:00.000Z"`, testRecord, ms("2026-11-28T08:00:00Z"), ""},
		{"timestamp beats originalTimestamp and receivedAt",
			`"receivedAt":"2026-11-28T08:00:03Z","originalTimestamp":"2026-11-28T08:00:02Z","timestamp":"2026-11-28T08:00:01Z"`,
			testRecord, ms("2026-11-28T08:00:01Z"), ""},
		{"originalTimestamp beats receivedAt",
			`"receivedAt":"2026-11-28T08:00:03Z","originalTimestamp":"2026-11-28T08:00:02Z"`,
			testRecord, ms("2026-11-28T08:00:02Z"), ""},
		{"receivedAt alone", `"receivedAt":"2026-11-28T08:00:03Z"`, testRecord, ms("2026-11-28T08:00:03Z"), ""},
		{"null timestamp skipped to originalTimestamp",
			`"timestamp":null,"originalTimestamp":"2026-11-28T08:00:02Z","receivedAt":"2026-11-28T08:00:03Z"`,
			testRecord, ms("2026-11-28T08:00:02Z"), ""},
		{"null timestamp and originalTimestamp skipped to receivedAt",
			`"timestamp":null,"originalTimestamp":null,"receivedAt":"2026-11-28T08:00:03Z"`,
			testRecord, ms("2026-11-28T08:00:03Z"), ""},
		{"first present decides: later garbage is not read",
			`"timestamp":"2026-11-28T08:00:01Z","receivedAt":"garbage"`, testRecord, ms("2026-11-28T08:00:01Z"), ""},
		{"first present decides: garbage timestamp is not rescued",
			`"timestamp":"garbage","receivedAt":"2026-11-28T08:00:03Z"`, testRecord, 0, ReasonBadTimestamp},
		{"no time: record time, cut to ms", ``, testRecord, testRecord.UnixMilli(), ""},
		{"all null: record time", `"timestamp":null,"originalTimestamp":null,"receivedAt":null`, testRecord, testRecord.UnixMilli(), ""},
		{"offset +05:30 converted", `"timestamp":"2026-11-28T14:30:00.123+05:30"`, testRecord, ms("2026-11-28T09:00:00.123Z"), ""},
		{"offset -08:00 converted", `"timestamp":"2026-11-28T00:00:00-08:00"`, testRecord, ms("2026-11-28T08:00:00Z"), ""},
		{"cut, not rounded, to ms", `"timestamp":"2026-11-28T09:00:00.123999999Z"`, testRecord, ms("2026-11-28T09:00:00.123Z"), ""},
		{"surrounding spaces tolerated", `"timestamp":" 2026-11-28T09:00:00Z "`, testRecord, ms("2026-11-28T09:00:00Z"), ""},
		{"unparseable", `"timestamp":"yesterday"`, testRecord, 0, ReasonBadTimestamp},
		{"empty string", `"timestamp":""`, testRecord, 0, ReasonBadTimestamp},
		{"no zone", `"timestamp":"2026-11-28T09:00:00"`, testRecord, 0, ReasonBadTimestamp},
		{"date only", `"timestamp":"2026-11-28"`, testRecord, 0, ReasonBadTimestamp},
		{"invalid date", `"timestamp":"2026-02-30T09:00:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"number is not a time", `"timestamp":1764320400000`, testRecord, 0, ReasonBadTimestamp},
		{"object is not a time", `"originalTimestamp":{"t":1}`, testRecord, 0, ReasonBadTimestamp},
		{"boolean is not a time", `"receivedAt":true`, testRecord, 0, ReasonBadTimestamp},
		{"before 2000", `"timestamp":"1999-12-31T23:59:59.999Z"`, testRecord, 0, ReasonTimestampOutOfRange},
		{"before 2000 by offset", `"timestamp":"2000-01-01T00:30:00+01:00"`, testRecord, 0, ReasonTimestampOutOfRange},
		{"2000-01-01 exactly", `"timestamp":"2000-01-01T00:00:00Z"`, testRecord, ms("2000-01-01T00:00:00Z"), ""},
		{"now + skew exactly", `"timestamp":"` + maxOK.Format(time.RFC3339Nano) + `"`, testRecord, maxOK.UnixMilli(), ""},
		{"past now + skew", `"timestamp":"` + maxOK.Add(time.Millisecond).Format(time.RFC3339Nano) + `"`, testRecord, 0, ReasonTimestampOutOfRange},
		{"far future", `"timestamp":"2099-01-01T00:00:00Z"`, testRecord, 0, ReasonTimestampOutOfRange},
		{"record time before 2000", ``, time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), 0, ReasonTimestampOutOfRange},
		{"zero record time", ``, time.Time{}, 0, ReasonTimestampOutOfRange},
		{"record time in the future", ``, testNow.Add(25 * time.Hour), 0, ReasonTimestampOutOfRange},
		{"event time wins over a bad record time", `"timestamp":"2026-11-28T08:00:00Z"`, time.Time{}, ms("2026-11-28T08:00:00Z"), ""},
		// RFC 3339 edges (contract section 3).
		{"lower-case t", `"timestamp":"2026-11-28t08:00:00Z"`, testRecord, ms("2026-11-28T08:00:00Z"), ""},
		{"lower-case z", `"timestamp":"2026-11-28T08:00:00.5z"`, testRecord, ms("2026-11-28T08:00:00.5Z"), ""},
		{"lower-case t and z", `"timestamp":"2026-11-28t08:00:00z"`, testRecord, ms("2026-11-28T08:00:00Z"), ""},
		{"leap second is the minute's last millisecond", `"timestamp":"2016-12-31T23:59:60Z"`, testRecord, ms("2016-12-31T23:59:59.999Z"), ""},
		{"leap second with a fraction", `"timestamp":"2016-12-31T23:59:60.5Z"`, testRecord, ms("2016-12-31T23:59:59.999Z"), ""},
		{"leap second with an offset", `"timestamp":"2017-01-01T05:29:60+05:30"`, testRecord, ms("2016-12-31T23:59:59.999Z"), ""},
		{"offset +23:59", `"timestamp":"2026-11-28T23:59:00+23:59"`, testRecord, ms("2026-11-28T00:00:00Z"), ""},
		{"offset -23:59", `"timestamp":"2026-11-28T00:00:00-23:59"`, testRecord, ms("2026-11-28T23:59:00Z"), ""},
		{"offset -00:00", `"timestamp":"2026-11-28T08:00:00-00:00"`, testRecord, ms("2026-11-28T08:00:00Z"), ""},
		{"offset +24:00", `"timestamp":"2026-11-28T08:00:00+24:00"`, testRecord, 0, ReasonBadTimestamp},
		{"offset -24:00", `"timestamp":"2026-11-28T08:00:00-24:00"`, testRecord, 0, ReasonBadTimestamp},
		{"offset +23:60", `"timestamp":"2026-11-28T08:00:00+23:60"`, testRecord, 0, ReasonBadTimestamp},
		{"offset without colon", `"timestamp":"2026-11-28T08:00:00+0530"`, testRecord, 0, ReasonBadTimestamp},
		{"offset hours only", `"timestamp":"2026-11-28T08:00:00+05"`, testRecord, 0, ReasonBadTimestamp},
		{"one fractional digit", `"timestamp":"2026-11-28T08:00:00.5Z"`, testRecord, ms("2026-11-28T08:00:00.500Z"), ""},
		{"two fractional digits", `"timestamp":"2026-11-28T08:00:00.05Z"`, testRecord, ms("2026-11-28T08:00:00.050Z"), ""},
		{"many fractional digits cut", `"timestamp":"2026-11-28T08:00:00.99999999999999Z"`, testRecord, ms("2026-11-28T08:00:00.999Z"), ""},
		{"dot without digits", `"timestamp":"2026-11-28T08:00:00.Z"`, testRecord, 0, ReasonBadTimestamp},
		{"comma before the fraction", `"timestamp":"2026-11-28T08:00:00,5Z"`, testRecord, 0, ReasonBadTimestamp},
		{"one-digit hour", `"timestamp":"2026-11-28T8:00:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"hour 24", `"timestamp":"2026-11-28T24:00:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"minute 60", `"timestamp":"2026-11-28T08:60:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"second 61", `"timestamp":"2026-11-28T08:00:61Z"`, testRecord, 0, ReasonBadTimestamp},
		{"space for T", `"timestamp":"2026-11-28 08:00:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"no seconds", `"timestamp":"2026-11-28T08:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"month 13", `"timestamp":"2026-13-01T08:00:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"day 0", `"timestamp":"2026-11-00T08:00:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"Feb 29 in a leap year", `"timestamp":"2024-02-29T08:00:00Z"`, testRecord, ms("2024-02-29T08:00:00Z"), ""},
		{"Feb 29 in a common year", `"timestamp":"2025-02-29T08:00:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"trailing text", `"timestamp":"2026-11-28T08:00:00Zx"`, testRecord, 0, ReasonBadTimestamp},
		{"signed year", `"timestamp":"+2026-11-28T08:00:00Z"`, testRecord, 0, ReasonBadTimestamp},
		{"lower-case t in originalTimestamp", `"originalTimestamp":"2026-11-28t08:00:02z"`, testRecord, ms("2026-11-28T08:00:02Z"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := `{"type":"page","userId":"u1"`
			if tc.times != "" {
				v += "," + tc.times
			}
			v += "}"
			ev, err := d.Decode([]byte(v), tc.record, testNow)
			rej := asRejection(t, err)
			if tc.reason != "" {
				if rej == nil || rej.Reason != tc.reason {
					t.Fatalf("got %+v, %v; want %s", ev, err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected rejection %v", err)
			}
			if ev.Time != tc.want {
				t.Fatalf("time %s, want %s", FormatTime(ev.Time), FormatTime(tc.want))
			}
		})
	}
}

// TestParseRFC3339AgreesWithTimePackage proves the strict parser reads
// every time the time package writes as the time package reads it, cut to
// milliseconds, at offsets across the whole allowed range.
func TestParseRFC3339AgreesWithTimePackage(t *testing.T) {
	start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for i := range 2000 {
		// a fixed walk over 27 years, nanoseconds and offsets
		sec := start + int64(i)*425_321_987%(27*365*86400)
		nsec := int64(i) * 7_919_377 % 1e9
		off := (i*2903)%(2*(23*3600+59*60)+1) - (23*3600 + 59*60)
		off -= off % 60
		tm := time.Unix(sec, nsec).In(time.FixedZone("", off))
		for _, layout := range []string{time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00"} {
			s := tm.Format(layout)
			want, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := parseRFC3339(s)
			if !ok || got.UnixMilli() != want.UnixMilli() {
				t.Fatalf("parseRFC3339(%q) = %v, %v; the time package reads %v", s, got, ok, want)
			}
		}
	}
}

// TestDecodeClockSkewConfigurable proves the allowed skew is configuration.
func TestDecodeClockSkewConfigurable(t *testing.T) {
	d := newTestDecoder(t, func(c *Config) { c.MaxClockSkew = 0 })
	at := func(tm time.Time) string {
		return fmt.Sprintf(`{"type":"page","userId":"u1","timestamp":%q}`, tm.Format(time.RFC3339Nano))
	}
	if _, err := d.Decode([]byte(at(testNow)), testRecord, testNow); err != nil {
		t.Fatalf("now rejected with zero skew: %v", err)
	}
	_, err := d.Decode([]byte(at(testNow.Add(time.Second))), testRecord, testNow)
	if r := asRejection(t, err); r == nil || r.Reason != ReasonTimestampOutOfRange {
		t.Fatalf("one second ahead with zero skew: %v, want timestamp_out_of_range", err)
	}
}

// TestRejectionDetailIsNotPersonal proves section 7: the detail names the
// rule and never carries the personal value that failed it.
func TestRejectionDetailIsNotPersonal(t *testing.T) {
	d := newTestDecoder(t, func(c *Config) { c.MaxEventBytes = 512 })
	tests := []struct {
		name, value, reason, secret string
	}{
		{"invalid json", `["jane.doe@example.com"]`, ReasonInvalidJSON, "jane.doe@example.com"},
		{"truncated json", `{"type":"page","userId":"jane.doe@example.com`, ReasonInvalidJSON, "jane.doe@example.com"},
		{"second value", `{"type":"page"} {"email":"jane.doe@example.com"}`, ReasonInvalidJSON, "jane.doe@example.com"},
		{"trailing data", `{"type":"page"} jane.doe@example.com`, ReasonInvalidJSON, "jane"},
		{"bad character", `{"type":"page","email":jane.doe@example.com}`, ReasonInvalidJSON, "jane"},
		{"bad escape", `{"type":"page","email":"jane\x.doe@example.com"}`, ReasonInvalidJSON, "x"},
		{"missing identity: invalid UTF-8", "{\"type\":\"page\",\"userId\":\"jane.doe@example.com\xff\"}", ReasonMissingIdentity, "jane.doe@example.com"},
		{"missing identity: alias", `{"type":"alias","userId":"jane.doe@example.com"}`, ReasonMissingIdentity, "jane.doe@example.com"},
		{"too large", `{"userId":"jane.doe@example.com","pad":"` + strings.Repeat("x", 600) + `"}`, ReasonTooLarge, "jane.doe@example.com"},
		{"missing identity: braces", `{"type":"page","userId":"{jane.doe@example.com}"}`, ReasonMissingIdentity, "jane.doe@example.com"},
		{"missing identity: anon prefix", `{"type":"page","userId":"anon:jane.doe@example.com"}`, ReasonMissingIdentity, "jane.doe@example.com"},
		{"bad timestamp", `{"type":"page","userId":"u1","timestamp":"Jane's birthday 1992-03-14"}`, ReasonBadTimestamp, "1992-03-14"},
		{"bad timestamp number", `{"type":"page","userId":"u1","timestamp":699999999}`, ReasonBadTimestamp, "699999999"},
		{"out of range past", `{"type":"page","userId":"u1","timestamp":"1992-03-14T10:00:00Z"}`, ReasonTimestampOutOfRange, "1992"},
		{"out of range future", `{"type":"page","userId":"u1","timestamp":"2091-03-14T10:00:00Z"}`, ReasonTimestampOutOfRange, "2091"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Decode([]byte(tc.value), testRecord, testNow)
			r := asRejection(t, err)
			if r == nil || r.Reason != tc.reason {
				t.Fatalf("got %v, want %s", err, tc.reason)
			}
			if r.Detail == "" {
				t.Fatal("empty detail: it must name the rule")
			}
			if strings.Contains(r.Detail, tc.secret) || strings.Contains(r.Error(), tc.secret) {
				t.Fatalf("detail %q carries the value %q", r.Detail, tc.secret)
			}
		})
	}
}

// TestDecodeMessageID proves messageId is carried (trimmed; integers as
// written) and absent when not a string or integer, or not valid UTF-8 as
// sent (repaired, two different ids could dedupe each other away).
func TestDecodeMessageID(t *testing.T) {
	d := newTestDecoder(t, nil)
	tests := []struct{ raw, want string }{
		{`"m-1"`, "m-1"},
		{`" m-1 "`, "m-1"},
		{`42`, "42"},
		{`4.2`, ""},
		{`null`, ""},
		{`{"id":1}`, ""},
		{"\"m-1\xff\"", ""}, // not valid UTF-8: absent, not repaired
		{`"m-1\udc00"`, ""}, // a lone surrogate likewise
		{`"m-\ud83d\ude00"`, "m-\U0001F600"},
	}
	for _, tc := range tests {
		v := fmt.Sprintf(`{"type":"page","userId":"u1","timestamp":%q,"messageId":%s}`, testTS, tc.raw)
		ev, err := d.Decode([]byte(v), testRecord, testNow)
		if err != nil || ev.MessageID != tc.want {
			t.Errorf("messageId %s: got %q, %v; want %q", tc.raw, ev.MessageID, err, tc.want)
		}
	}
}

// TestConfigValidate proves every invalid setting is refused with a message
// naming it, and the defaults are valid.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"region IN", func(c *Config) { c.DefaultPhoneRegion = "IN" }, ""},
		{"region lower-case", func(c *Config) { c.DefaultPhoneRegion = "us" }, ""},
		{"no launch events", func(c *Config) { c.LaunchEvents = nil }, "launch events"},
		{"zero size", func(c *Config) { c.MaxEventBytes = 0 }, "max event bytes"},
		{"negative skew", func(c *Config) { c.MaxClockSkew = -time.Second }, "max clock skew"},
		{"unknown region", func(c *Config) { c.DefaultPhoneRegion = "XX" }, "default phone region"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			_, err := NewDecoder(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestKindNames proves the contract's names of kinds and channels.
func TestKindNames(t *testing.T) {
	tests := []struct {
		k             Kind
		name, channel string
	}{
		{KindAppLaunch, "app_launch", "app"},
		{KindWebVisit, "web_visit", "web"},
		{KindIdentify, "identify", ""},
		{KindAlias, "alias", ""},
		{KindIgnored, "ignored", ""},
	}
	for _, tc := range tests {
		if tc.k.String() != tc.name || tc.k.Channel() != tc.channel {
			t.Errorf("kind %d: %q %q, want %q %q", tc.k, tc.k.String(), tc.k.Channel(), tc.name, tc.channel)
		}
		if applied := tc.k != KindIgnored; slices.Contains(Kinds, tc.k) != applied {
			t.Errorf("kind %s: in Kinds is %v, want %v", tc.k, !applied, applied)
		}
	}
}

// TestFormatTime proves section 6's time format: UTC, exactly three
// fractional digits.
func TestFormatTime(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{time.Date(2026, 11, 28, 9, 15, 2, 123e6, time.UTC).UnixMilli(), "2026-11-28T09:15:02.123Z"},
		{time.Date(2026, 11, 28, 9, 15, 2, 0, time.UTC).UnixMilli(), "2026-11-28T09:15:02.000Z"},
		{time.Date(2000, 1, 1, 0, 0, 0, 5e6, time.UTC).UnixMilli(), "2000-01-01T00:00:00.005Z"},
	}
	for _, tc := range tests {
		if got := FormatTime(tc.ms); got != tc.want {
			t.Errorf("FormatTime(%d) = %q, want %q", tc.ms, got, tc.want)
		}
	}
}
