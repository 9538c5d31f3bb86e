package profile

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// fieldCase is one field rule: the traits / context JSON of an identify
// event, and the value the field must get or the drop it must record.
type fieldCase struct {
	name   string
	traits string // JSON object or ""; the event's traits
	ctx    string // JSON object or ""; the event's context
	field  string // the field under test
	want   string // its value; "" = not set
	drop   string // the drop reason for field; "" = no drop
}

func runFieldCases(t *testing.T, d *Decoder, tests []fieldCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := decodeIdentify(t, d, tc.traits, tc.ctx)
			f := fieldMap(t, ev)
			got, set := f[tc.field]
			if tc.want == "" && set {
				t.Errorf("%s = %q, want unset", tc.field, got)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("%s = %q (set %v), want %q", tc.field, got, set, tc.want)
			}
			dropField := tc.field
			if strings.HasPrefix(dropField, TraitPrefix) {
				dropField = "trait"
			}
			var drops []string
			for _, dr := range ev.Dropped {
				if dr.Field == dropField {
					drops = append(drops, dr.Reason)
				}
			}
			switch {
			case tc.drop == "" && len(drops) != 0:
				t.Errorf("unexpected drops %v of %s", drops, dropField)
			case tc.drop != "" && !slices.Equal(drops, []string{tc.drop}):
				t.Errorf("drops of %s = %v, want [%s]", dropField, drops, tc.drop)
			}
			for _, dr := range ev.Dropped {
				if !slices.Contains(DropReasons, dr.Reason) || !slices.Contains(DropFields, dr.Field) {
					t.Errorf("drop %+v not in DropReasons/DropFields", dr)
				}
			}
		})
	}
}

func decodeIdentify(t testing.TB, d *Decoder, traits, ctx string) Event {
	t.Helper()
	v := `{"type":"identify","userId":"u1","timestamp":"` + testTS + `"`
	if traits != "" {
		v += `,"traits":` + traits
	}
	if ctx != "" {
		v += `,"context":` + ctx
	}
	v += "}"
	ev, err := d.Decode([]byte(v), testRecord, testNow)
	if err != nil {
		t.Fatalf("decode %s: %v", v, err)
	}
	return ev
}

// TestFieldEmail proves the email rule: trimmed, a single bare address with a
// dotted domain, domain lowercased, local part kept.
func TestFieldEmail(t *testing.T) {
	d := newTestDecoder(t, nil)
	e := func(name, raw, want, drop string) fieldCase {
		return fieldCase{name, `{"email":` + raw + `}`, "", FieldEmail, want, drop}
	}
	tests := []fieldCase{
		e("plain", `"jane@example.com"`, "jane@example.com", ""),
		e("trimmed", `"  jane@example.com\t"`, "jane@example.com", ""),
		e("domain lowercased, local part kept", `"Jane.Doe@Example.COM"`, "Jane.Doe@example.com", ""),
		e("plus tag and subdomain", `"jane+news@Mail.Example.co.uk"`, "jane+news@mail.example.co.uk", ""),
		e("display name rejected", `"Jane Doe <jane@example.com>"`, "", DropInvalid),
		e("angle brackets rejected", `"<jane@example.com>"`, "", DropInvalid),
		e("comment rejected", `"jane@example.com (Jane)"`, "", DropInvalid),
		e("two addresses rejected", `"jane@example.com, bob@example.com"`, "", DropInvalid),
		e("undotted domain", `"jane@localhost"`, "", DropInvalid),
		e("domain starts with dot", `"jane@.example.com"`, "", DropInvalid),
		e("domain ends with dot", `"jane@example.com."`, "", DropInvalid),
		e("double dot in domain", `"jane@example..com"`, "", DropInvalid),
		e("domain literal", `"jane@[192.168.0.1]"`, "", DropInvalid),
		e("no at sign", `"jane.example.com"`, "", DropInvalid),
		e("two at signs", `"jane@@example.com"`, "", DropInvalid),
		e("no local part", `"@example.com"`, "", DropInvalid),
		e("empty", `""`, "", DropEmpty),
		e("blank", `"   "`, "", DropEmpty),
		e("too long", `"`+strings.Repeat("a", 64)+"@"+strings.Repeat("b", 186)+`.com"`, "", DropTooLong),
		e("number", `42`, "", DropWrongType),
		e("object", `{"home":"jane@example.com"}`, "", DropWrongType),
		e("null is absent, not a drop", `null`, "", ""),
		{"from context.traits", "", `{"traits":{"email":"ctx@example.com"}}`, FieldEmail, "ctx@example.com", ""},
	}
	runFieldCases(t, d, tests)
}

// TestFieldPhone proves the phone rule: E.164 via the phone library, the
// default region for numbers without "+", dropped without one or when invalid.
func TestFieldPhone(t *testing.T) {
	none := newTestDecoder(t, nil)
	in := newTestDecoder(t, func(c *Config) { c.DefaultPhoneRegion = "IN" })
	us := newTestDecoder(t, func(c *Config) { c.DefaultPhoneRegion = "us" })
	p := func(name, raw, want, drop string) fieldCase {
		return fieldCase{name, `{"phone":` + raw + `}`, "", FieldPhone, want, drop}
	}
	t.Run("no region", func(t *testing.T) {
		runFieldCases(t, none, []fieldCase{
			p("with + (US)", `"+1 201-555-0123"`, "+12015550123", ""),
			p("with + (IN)", `"+91 81234 56789"`, "+918123456789", ""),
			p("with + (GB)", `"+44 7400 123456"`, "+447400123456", ""),
			p("with + and punctuation", `" +1 (201) 555.0123 "`, "+12015550123", ""),
			p("without + dropped", `"201-555-0123"`, "", DropNoRegion),
			p("integer without + dropped", `2015550123`, "", DropNoRegion),
			p("too short", `"+1 555"`, "", DropInvalid),
			p("not a number", `"+call me"`, "", DropInvalid),
			p("unassigned country code", `"+999 123456789"`, "", DropInvalid),
			p("too long", `"+`+strings.Repeat("1", 70)+`"`, "", DropTooLong),
			p("empty", `""`, "", DropEmpty),
			p("boolean", `true`, "", DropWrongType),
			p("float", `2015550123.5`, "", DropWrongType),
		})
	})
	t.Run("region IN", func(t *testing.T) {
		runFieldCases(t, in, []fieldCase{
			p("national number", `"81234 56789"`, "+918123456789", ""),
			p("national number with trunk 0", `"081234 56789"`, "+918123456789", ""),
			p("integer national number", `8123456789`, "+918123456789", ""),
			p("+ overrides region", `"+1 201-555-0123"`, "+12015550123", ""),
			p("US number invalid in IN", `"201-555-0123"`, "", DropInvalid),
		})
	})
	t.Run("region us (case-insensitive)", func(t *testing.T) {
		runFieldCases(t, us, []fieldCase{
			p("national number", `"(201) 555-0123"`, "+12015550123", ""),
			p("with country code, no +", `"1 201 555 0123"`, "+12015550123", ""),
			p("invalid area code", `"(099) 555-0123"`, "", DropInvalid),
		})
	})
}

// TestFieldBirthday proves the birthday forms, UTC, and the range.
// testNow is 2026-11-28.
func TestFieldBirthday(t *testing.T) {
	d := newTestDecoder(t, nil)
	unix := func(y int, m time.Month, day int) int64 { return time.Date(y, m, day, 12, 0, 0, 0, time.UTC).Unix() }
	b := func(name, raw, want, drop string) fieldCase {
		return fieldCase{name, `{"birthday":` + raw + `}`, "", FieldBirthday, want, drop}
	}
	tests := []fieldCase{
		b("date", `"1992-03-14"`, "1992-03-14", ""),
		b("date trimmed", `" 1992-03-14 "`, "1992-03-14", ""),
		b("date-time Z", `"1992-03-14T10:00:00Z"`, "1992-03-14", ""),
		b("date-time fraction", `"1992-03-14T10:00:00.000Z"`, "1992-03-14", ""),
		b("offset taken in UTC: next day", `"1992-03-14T23:30:00-05:00"`, "1992-03-15", ""),
		b("offset taken in UTC: previous day", `"1992-03-14T01:00:00+05:30"`, "1992-03-13", ""),
		b("date-time without zone is UTC", `"1992-03-14T23:30:00"`, "1992-03-14", ""),
		b("$D_ seconds", fmt.Sprintf(`"$D_%d"`, unix(1992, 3, 14)), "1992-03-14", ""),
		b("$D_ negative before 1970", fmt.Sprintf(`"$D_%d"`, unix(1965, 7, 1)), "1965-07-01", ""),
		b("$D_0", `"$D_0"`, "1970-01-01", ""),
		b("today", `"2026-11-28"`, "2026-11-28", ""),
		b("tomorrow is future", `"2026-11-29"`, "", DropOutOfRange),
		b("future $D_", fmt.Sprintf(`"$D_%d"`, unix(2030, 1, 1)), "", DropOutOfRange),
		b("exactly 130 years", `"1896-11-28"`, "1896-11-28", ""),
		b("over 130 years", `"1896-11-27"`, "", DropOutOfRange),
		b("year 19000 via $D_ is future", `"$D_537000000000"`, "", DropOutOfRange),
		b("far past via $D_", `"$D_-537000000000"`, "", DropOutOfRange),
		b("$D_ beyond bounds", `"$D_99999999999999999"`, "", DropInvalid),
		b("$D_ not a number", `"$D_abc"`, "", DropInvalid),
		b("$D_ fraction", `"$D_12.5"`, "", DropInvalid),
		b("impossible date", `"1992-02-30"`, "", DropInvalid),
		b("other format", `"14/03/1992"`, "", DropInvalid),
		b("words", `"March 14th"`, "", DropInvalid),
		b("empty", `""`, "", DropEmpty),
		b("number", `19920314`, "", DropWrongType),
		{"from context.traits", "", `{"traits":{"birthday":"1992-03-14"}}`, FieldBirthday, "1992-03-14", ""},
	}
	runFieldCases(t, d, tests)
}

// TestFieldText proves customer_type, city and country: strings, trimmed,
// with their sources and spellings.
func TestFieldText(t *testing.T) {
	d := newTestDecoder(t, nil)
	tests := []fieldCase{
		{"customerType", `{"customerType":"Gold"}`, "", FieldCustomerType, "Gold", ""},
		{"customer_type", `{"customer_type":"Silver"}`, "", FieldCustomerType, "Silver", ""},
		{"trimmed", `{"customerType":"  Bronze "}`, "", FieldCustomerType, "Bronze", ""},
		{"customerType beats customer_type", `{"customerType":"Gold","customer_type":"Silver"}`, "", FieldCustomerType, "Gold", ""},
		{"null customerType falls to customer_type", `{"customerType":null,"customer_type":"Silver"}`, "", FieldCustomerType, "Silver", ""},
		{"context.traits customerType", "", `{"traits":{"customerType":"Gold"}}`, FieldCustomerType, "Gold", ""},
		{"context.traits customer_type", "", `{"traits":{"customer_type":"Gold"}}`, FieldCustomerType, "Gold", ""},
		{"traits beats context.traits across spellings", `{"customer_type":"Gold"}`, `{"traits":{"customerType":"Silver"}}`, FieldCustomerType, "Gold", ""},
		{"number dropped", `{"customerType":3}`, "", FieldCustomerType, "", DropWrongType},
		{"empty dropped", `{"customerType":" "}`, "", FieldCustomerType, "", DropEmpty},
		{"too long dropped", `{"customerType":"` + strings.Repeat("g", MaxTextBytes+1) + `"}`, "", FieldCustomerType, "", DropTooLong},
		{"not a custom trait", `{"customerType":"Gold"}`, "", TraitPrefix + "customerType", "", ""},
		{"city", "", `{"location":{"city":" Pune "}}`, FieldCity, "Pune", ""},
		{"country", "", `{"location":{"country":"India"}}`, FieldCountry, "India", ""},
		{"city number dropped", "", `{"location":{"city":411001}}`, FieldCity, "", DropWrongType},
		{"country empty dropped", "", `{"location":{"country":""}}`, FieldCountry, "", DropEmpty},
		{"traits.city is a custom trait, not city", `{"city":"Pune"}`, "", FieldCity, "", ""},
		{"location not an object", "", `{"location":"Pune"}`, FieldCity, "", ""},
		{"context not an object", "", `"Pune"`, FieldCity, "", ""},
	}
	runFieldCases(t, d, tests)
}

// TestFieldCoordinates proves latitude and longitude are one pair.
func TestFieldCoordinates(t *testing.T) {
	d := newTestDecoder(t, nil)
	c := func(name, loc, want, drop string) fieldCase {
		return fieldCase{name, "", `{"location":` + loc + `}`, FieldCoordinates, want, drop}
	}
	tests := []fieldCase{
		c("pair", `{"latitude":18.5204,"longitude":73.8567}`, "18.5204,73.8567", ""),
		c("integers and negatives", `{"latitude":-33,"longitude":-70.5}`, "-33,-70.5", ""),
		c("exponent written shortest", `{"latitude":1e1,"longitude":1.5e-5}`, "10,0.000015", ""),
		c("negative zero is 0", `{"latitude":-0.0,"longitude":0}`, "0,0", ""),
		c("bounds inclusive", `{"latitude":-90,"longitude":180}`, "-90,180", ""),
		c("latitude missing", `{"longitude":73.8567}`, "", DropIncomplete),
		c("longitude missing", `{"latitude":18.5204}`, "", DropIncomplete),
		c("longitude null", `{"latitude":18.5204,"longitude":null}`, "", DropIncomplete),
		c("latitude out of range", `{"latitude":90.5,"longitude":0}`, "", DropOutOfRange),
		c("longitude out of range", `{"latitude":0,"longitude":-180.01}`, "", DropOutOfRange),
		c("string latitude", `{"latitude":"18.5204","longitude":73.8567}`, "", DropWrongType),
		c("boolean longitude", `{"latitude":18.5,"longitude":true}`, "", DropWrongType),
		c("huge number", `{"latitude":1e400,"longitude":0}`, "", DropWrongType),
		c("both null: nothing", `{"latitude":null,"longitude":null}`, "", ""),
		c("neither: nothing", `{"city":"Pune"}`, "", ""),
	}
	runFieldCases(t, d, tests)
	// The pair is never split into latitude/longitude fields by the decoder.
	ev := decodeIdentify(t, d, "", `{"location":{"latitude":1,"longitude":2}}`)
	f := fieldMap(t, ev)
	if _, ok := f[FieldLatitude]; ok {
		t.Error("decoder set latitude alone")
	}
	if _, ok := f[FieldLongitude]; ok {
		t.Error("decoder set longitude alone")
	}
}

// TestFieldTimezone proves only valid IANA names are kept.
func TestFieldTimezone(t *testing.T) {
	d := newTestDecoder(t, nil)
	z := func(name, raw, want, drop string) fieldCase {
		return fieldCase{name, "", `{"timezone":` + raw + `}`, FieldTimezone, want, drop}
	}
	tests := []fieldCase{
		z("Asia/Kolkata", `"Asia/Kolkata"`, "Asia/Kolkata", ""),
		z("America/Argentina/Buenos_Aires", `"America/Argentina/Buenos_Aires"`, "America/Argentina/Buenos_Aires", ""),
		z("again, from the cache", `"Asia/Kolkata"`, "Asia/Kolkata", ""),
		z("UTC", `"UTC"`, "UTC", ""),
		z("trimmed", `" Europe/Berlin "`, "Europe/Berlin", ""),
		z("Local", `"Local"`, "", DropInvalid),
		z("empty", `""`, "", DropEmpty),
		z("garbage", `"Mars/Olympus_Mons"`, "", DropInvalid),
		z("offset is not a name", `"+05:30"`, "", DropInvalid),
		z("path escape", `"../../etc/passwd"`, "", DropInvalid),
		z("absolute path", `"/etc/localtime"`, "", DropInvalid),
		z("number", `330`, "", DropWrongType),
		z("localtime is the machine's zone", `"localtime"`, "", DropInvalid),
		z("posix/ copy is not portable", `"posix/Asia/Kolkata"`, "", DropInvalid),
		z("right/ copy is not portable", `"right/UTC"`, "", DropInvalid),
		z("posixrules", `"posixrules"`, "", DropInvalid),
	}
	runFieldCases(t, d, tests)
}

// TestFieldCustomTraits proves the custom trait rules: scalar values only,
// integers with every digit as sent, other numbers in shortest form without
// exponent, key and value limits.
func TestFieldCustomTraits(t *testing.T) {
	d := newTestDecoder(t, nil)
	key120 := strings.Repeat("k", MaxTraitKeyBytes)
	val512 := strings.Repeat("v", MaxTraitValueBytes)
	tr := func(name, members, field, want, drop string) fieldCase {
		return fieldCase{name, `{` + members + `}`, "", field, want, drop}
	}
	tests := []fieldCase{
		tr("string as sent", `"plan":"Pro "`, "trait.plan", "Pro ", ""),
		tr("integer", `"age":30`, "trait.age", "30", ""),
		tr("negative integer", `"delta":-7`, "trait.delta", "-7", ""),
		tr("1e1 is 10", `"n":1e1`, "trait.n", "10", ""),
		tr("decimal shortest", `"lat":18.5204`, "trait.lat", "18.5204", ""),
		tr("trailing zeros dropped", `"x":2.50`, "trait.x", "2.5", ""),
		tr("small number no exponent", `"x":1.5e-7`, "trait.x", "0.00000015", ""),
		tr("large number no exponent", `"x":1e21`, "trait.x", "1000000000000000000000", ""),
		tr("int64 max exact", `"x":9223372036854775807`, "trait.x", "9223372036854775807", ""),
		tr("integer beyond 2^53 keeps every digit", `"x":9007199254740993`, "trait.x", "9007199254740993", ""),
		tr("integer beyond int64 keeps every digit", `"x":12345678901234567890`, "trait.x", "12345678901234567890", ""),
		tr("negative integer beyond int64 keeps every digit", `"x":-92233720368547758090`, "trait.x", "-92233720368547758090", ""),
		tr("integer of 512 digits", `"x":`+strings.Repeat("9", 512), "trait.x", strings.Repeat("9", 512), ""),
		tr("integer of 513 digits dropped", `"x":`+strings.Repeat("9", 513), "trait.x", "", DropTooLong),
		tr("negative zero", `"x":-0`, "trait.x", "0", ""),
		tr("true", `"vip":true`, "trait.vip", "true", ""),
		tr("false", `"vip":false`, "trait.vip", "false", ""),
		tr("object dropped", `"address":{"city":"Pune"}`, "trait.address", "", DropWrongType),
		tr("array dropped", `"tags":["a","b"]`, "trait.tags", "", DropWrongType),
		tr("null ignored", `"plan":null`, "trait.plan", "", ""),
		tr("empty string dropped", `"plan":""`, "trait.plan", "", DropEmpty),
		tr("huge number dropped", `"x":1e400`, "trait.x", "", DropInvalid),
		tr("key of 120 bytes", `"`+key120+`":"v"`, "trait."+key120, "v", ""),
		tr("key of 121 bytes", `"`+key120+`k":"v"`, "trait."+key120+"k", "", DropTooLong),
		tr("empty key", `"":"v"`, "trait.", "", DropEmpty),
		tr("value of 512 bytes", `"bio":"`+val512+`"`, "trait.bio", val512, ""),
		tr("value of 513 bytes", `"bio":"`+val512+`v"`, "trait.bio", "", DropTooLong),
		tr("multi-byte value counted in bytes", `"bio":"`+strings.Repeat("é", 257)+`"`, "trait.bio", "", DropTooLong),
		tr("reserved email is not a trait", `"email":"jane@example.com"`, "trait.email", "", ""),
		tr("reserved phone is not a trait", `"phone":"+12015550123"`, "trait.phone", "", ""),
		tr("reserved birthday is not a trait", `"birthday":"1992-03-14"`, "trait.birthday", "", ""),
		tr("reserved customer_type is not a trait", `"customer_type":"Gold"`, "trait.customer_type", "", ""),
		{"context.traits custom", "", `{"traits":{"plan":"pro"}}`, "trait.plan", "pro", ""},
	}
	runFieldCases(t, d, tests)
}

// TestFieldTraitLimit proves that with more than 256 custom traits the 256
// smallest keys in byte order are kept, whatever order they were sent in.
func TestFieldTraitLimit(t *testing.T) {
	d := newTestDecoder(t, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%03d", i)
	}
	// Invalid traits do not use up the limit.
	keys = append(keys, "a_object", "a_array")
	for round := 0; round < 5; round++ {
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		var b strings.Builder
		b.WriteString("{")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			switch k {
			case "a_object":
				fmt.Fprintf(&b, "%q:{}", k)
			case "a_array":
				fmt.Fprintf(&b, "%q:[]", k)
			default:
				fmt.Fprintf(&b, "%q:%q", k, "v"+k)
			}
		}
		b.WriteString("}")
		ev := decodeIdentify(t, d, b.String(), "")
		f := fieldMap(t, ev)
		n := 0
		for name := range f {
			if strings.HasPrefix(name, TraitPrefix) {
				n++
			}
		}
		if n != MaxTraits {
			t.Fatalf("kept %d traits, want %d", n, MaxTraits)
		}
		for i := 0; i < 300; i++ {
			k := fmt.Sprintf("trait.k%03d", i)
			if _, ok := f[k]; ok != (i < MaxTraits) {
				t.Fatalf("trait %s kept=%v, want %v", k, ok, i < MaxTraits)
			}
		}
		limit := 0
		for _, dr := range ev.Dropped {
			if dr == (Drop{"trait", DropLimit}) {
				limit++
			}
		}
		if limit != 300-MaxTraits {
			t.Fatalf("%d limit drops, want %d", limit, 300-MaxTraits)
		}
	}
}

// TestFieldTraitsPrecedence proves traits beats context.traits on a shared
// key, that a null in traits carries no value, and that both are read.
func TestFieldTraitsPrecedence(t *testing.T) {
	d := newTestDecoder(t, nil)
	tests := []fieldCase{
		{"traits wins email", `{"email":"own@example.com"}`, `{"traits":{"email":"ctx@example.com"}}`, FieldEmail, "own@example.com", ""},
		{"traits wins custom", `{"plan":"gold"}`, `{"traits":{"plan":"silver"}}`, "trait.plan", "gold", ""},
		{"traits wins even when invalid", `{"email":"not an email"}`, `{"traits":{"email":"ctx@example.com"}}`, FieldEmail, "", DropInvalid},
		{"null in traits does not hide context.traits", `{"email":null}`, `{"traits":{"email":"ctx@example.com"}}`, FieldEmail, "ctx@example.com", ""},
		{"keys from both are read", `{"plan":"gold"}`, `{"traits":{"seats":3}}`, "trait.seats", "3", ""},
		{"traits not an object", `"gold"`, `{"traits":{"plan":"silver"}}`, "trait.plan", "silver", ""},
	}
	runFieldCases(t, d, tests)
}

// TestFieldsDropAlone proves a failing field is dropped alone and counted,
// the rest of the event still applies, and identities become fields.
func TestFieldsDropAlone(t *testing.T) {
	d := newTestDecoder(t, nil)
	v := `{"type":"track","event":"Application Opened","userId":" u-7 ","anonymousId":"a-7",
		"timestamp":"` + testTS + `","messageId":"m-1",
		"context":{"traits":{"email":"Jane <jane@example.com>","phone":"12345","birthday":"1992-03-14",
			"customerType":"Gold","plan":"pro","tags":["x"]},
			"location":{"city":"Pune","country":"India","latitude":18.5204},
			"timezone":"Local"}}`
	ev, err := d.Decode([]byte(v), testRecord, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		FieldCustomerID:   "u-7",
		FieldAnonymousID:  "a-7",
		FieldBirthday:     "1992-03-14",
		FieldCustomerType: "Gold",
		FieldCity:         "Pune",
		FieldCountry:      "India",
		"trait.plan":      "pro",
	}
	got := fieldMap(t, ev)
	if len(got) != len(want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	wantDrops := []Drop{
		{FieldEmail, DropInvalid},
		{FieldPhone, DropNoRegion},
		{FieldCoordinates, DropIncomplete},
		{FieldTimezone, DropInvalid},
		{"trait", DropWrongType},
	}
	if !sameMultiset(ev.Dropped, wantDrops) {
		t.Errorf("dropped %v, want %v", ev.Dropped, wantDrops)
	}
	if ev.Kind != KindAppLaunch || ev.ProfileID != "u-7" || ev.Time != testTSMs || ev.MessageID != "m-1" {
		t.Errorf("event %+v", ev)
	}
}

// TestDecodeDeterministic proves the same record decodes to the same Event,
// fields in the same order, every time.
func TestDecodeDeterministic(t *testing.T) {
	d := newTestDecoder(t, nil)
	var b strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, `,"t%02d":%d,"o%02d":{}`, i, i, i)
	}
	traits := `{"plan":"pro"` + b.String() + `}`
	first := decodeIdentify(t, d, traits, "")
	for i := 0; i < 20; i++ {
		again := decodeIdentify(t, d, traits, "")
		if !slices.Equal(first.Fields, again.Fields) || !slices.Equal(first.Dropped, again.Dropped) {
			t.Fatal("decode is not deterministic")
		}
	}
}

// TestFormatNumber proves numbers are written in their shortest form that
// reads back to the same value, never with an exponent.
func TestFormatNumber(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{10, "10"},
		{18.5204, "18.5204"},
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{-2.5, "-2.5"},
		{1e21, "1000000000000000000000"},
		{1.5e-7, "0.00000015"},
		{math.Nextafter(0.3, 1), "0.30000000000000004"},
	}
	for _, tc := range tests {
		if got := FormatNumber(tc.f); got != tc.want {
			t.Errorf("FormatNumber(%v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

// TestShortestAsSent: a number literal kept as sent is exactly what
// FormatNumber writes for its value. The literals are drawn at random
// around the 15-digit limit (and past it, where two literals can read as
// one float64), with and without signs, leading and trailing zeros and
// exponents; a limit of 16 or 17 digits fails here.
func TestShortestAsSent(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{"18.5204", true}, {"-73.8", true}, {"10", true}, {"0.5", true}, {"-0.000123", true},
		{"123456789012345", true}, {"0.123456789012345", true}, {"90", true},
		{"0", false}, {"-0", false}, {"0.0", false}, {"18.50", false}, {"1e1", false}, {"1.5E-7", false},
		{"01", false}, {"1.", false}, {".5", false}, {"+1", false}, {"1234567890123456", false},
		{"0.1234567890123456", false}, {"", false}, {"-", false}, {"1.2.3", false}, {"1 ", false},
	} {
		if got := shortestAsSent([]byte(tc.raw)); got != tc.want {
			t.Errorf("shortestAsSent(%q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
	rnd := rand.New(rand.NewPCG(7, 11))
	kept := 0
	for range 200000 {
		raw := randomNumberLiteral(rnd)
		if !shortestAsSent([]byte(raw)) {
			continue
		}
		kept++
		f, ok := numberOf([]byte(raw))
		if !ok {
			t.Fatalf("%q kept as sent, but not a number", raw)
		}
		if want := FormatNumber(f); raw != want {
			t.Fatalf("%q kept as sent, but FormatNumber writes %q", raw, want)
		}
	}
	if kept < 50000 {
		t.Fatalf("only %d of 200000 literals kept as sent: the draw misses the fast path", kept)
	}
}

// randomNumberLiteral draws a JSON-like number literal of 1 to 18 digits.
func randomNumberLiteral(rnd *rand.Rand) string {
	var b strings.Builder
	if rnd.IntN(3) == 0 {
		b.WriteByte('-')
	}
	n := 1 + rnd.IntN(18)
	ds := make([]byte, n)
	for i := range ds {
		ds[i] = byte('0' + rnd.IntN(10))
	}
	if rnd.IntN(4) == 0 { // runs of nines and zeros, where rounding carries
		for i := rnd.IntN(n); i < n; i++ {
			ds[i] = "09"[rnd.IntN(2)]
		}
	}
	switch point := rnd.IntN(n + 2); {
	case point == 0: // 0.000ddd
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", rnd.IntN(6)))
		b.Write(ds)
	case point >= n:
		b.Write(ds)
	default:
		b.Write(ds[:point])
		b.WriteByte('.')
		b.Write(ds[point:])
	}
	if rnd.IntN(20) == 0 {
		fmt.Fprintf(&b, "e%d", rnd.IntN(40)-20)
	}
	return b.String()
}

func sameMultiset[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	n := make(map[T]int, len(a))
	for _, x := range a {
		n[x]++
	}
	for _, x := range b {
		n[x]--
		if n[x] < 0 {
			return false
		}
	}
	return true
}

// TestPhoneCacheAgreesWithLibrary: the cache of phone outcomes returns what
// normPhone returns, on a miss and on a hit, per region (the same digits
// mean different numbers, or none, under different default regions), and
// still after it filled and started again.
func TestPhoneCacheAgreesWithLibrary(t *testing.T) {
	c := newPhoneCache()
	inputs := []string{`"+919800004821"`, `" +1 415 555 2671 "`, `"9800004821"`, `"4155552671"`, `"020 7946 0958"`,
		`"+12"`, `"not a number"`, `""`, `919800004821`, `"+44 20 7946 0958"`, `"` + strings.Repeat("9", 70) + `"`}
	check := func(raw, region string) {
		t.Helper()
		wv, wd := normPhone(json.RawMessage(raw), region)
		for i := 0; i < 2; i++ { // a miss, then a hit
			if v, d := c.norm(json.RawMessage(raw), region); v != wv || d != wd {
				t.Fatalf("norm(%s, %q) = %q, %q; normPhone gives %q, %q", raw, region, v, d, wv, wd)
			}
		}
	}
	for _, region := range []string{"IN", "US", "GB", "", "in"} {
		for _, raw := range inputs {
			check(raw, region)
		}
	}
	for i := 0; i < phoneCacheSize+10; i++ { // fill it past its size
		check(fmt.Sprintf(`"+9198%08d"`, i), "IN")
	}
	if len(c.m) > phoneCacheSize {
		t.Fatalf("cache holds %d outcomes, bound %d", len(c.m), phoneCacheSize)
	}
	for _, raw := range inputs {
		check(raw, "IN")
	}
}
