package view_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/profiled/profiled/internal/view"
)

func date(s string) time.Time {
	d, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return d
}

func instant(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func zone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func TestAgeAt(t *testing.T) {
	tests := []struct {
		name     string
		birthday string
		now      string
		loc      *time.Location
		want     view.Age
	}{
		{"birthday today", "1992-03-14", "2026-03-14T00:00:00Z", time.UTC, view.Age{34, 0}},
		{"day before birthday", "1992-03-14", "2026-03-13T23:59:59Z", time.UTC, view.Age{33, 11}},
		{"months past birthday", "1992-03-14", "2026-11-28T09:15:02Z", time.UTC, view.Age{34, 8}},
		{"month anniversary not yet", "1992-03-14", "2026-11-13T12:00:00Z", time.UTC, view.Age{34, 7}},
		{"born today", "2026-11-28", "2026-11-28T10:00:00Z", time.UTC, view.Age{0, 0}},
		{"born yesterday", "2026-11-27", "2026-11-28T10:00:00Z", time.UTC, view.Age{0, 0}},
		{"one year one month", "2025-10-28", "2026-11-28T10:00:00Z", time.UTC, view.Age{1, 1}},
		// Feb 29 is reached on Mar 1 in common years, on Feb 29 in leap years.
		{"leap day, common year, Feb 28", "2000-02-29", "2023-02-28T12:00:00Z", time.UTC, view.Age{22, 11}},
		{"leap day, common year, Mar 1", "2000-02-29", "2023-03-01T00:00:00Z", time.UTC, view.Age{23, 0}},
		{"leap day, leap year, Feb 28", "2000-02-29", "2024-02-28T12:00:00Z", time.UTC, view.Age{23, 11}},
		{"leap day, leap year, Feb 29", "2000-02-29", "2024-02-29T00:00:00Z", time.UTC, view.Age{24, 0}},
		{"31st in a 30-day month", "1990-01-31", "2026-04-30T12:00:00Z", time.UTC, view.Age{36, 2}},
		{"31st, next month begins", "1990-01-31", "2026-05-01T00:00:00Z", time.UTC, view.Age{36, 3}},
		// 2026-03-13T20:00Z is already Mar 14 in Kolkata (+05:30): the
		// birthday has begun where the person lives, not yet in UTC.
		{"birthday begun east of UTC", "1992-03-14", "2026-03-13T20:00:00Z", zone("Asia/Kolkata"), view.Age{34, 0}},
		{"same instant in UTC", "1992-03-14", "2026-03-13T20:00:00Z", time.UTC, view.Age{33, 11}},
		// 2026-03-14T05:00Z is still Mar 13 in Los Angeles (-07:00, DST).
		{"birthday not yet west of UTC", "1992-03-14", "2026-03-14T05:00:00Z", zone("America/Los_Angeles"), view.Age{33, 11}},
		{"nil zone is UTC", "1992-03-14", "2026-03-14T05:00:00Z", nil, view.Age{34, 0}},
		// A birthday stored as today in UTC is tomorrow's in Honolulu.
		{"future in the zone is zero, not negative", "2026-11-28", "2026-11-28T05:00:00Z", zone("Pacific/Honolulu"), view.Age{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := view.AgeAt(date(tt.birthday), instant(tt.now), tt.loc)
			if !ok || got != tt.want {
				t.Errorf("AgeAt(%s, %s) = %v, %v; want %v", tt.birthday, tt.now, got, ok, tt.want)
			}
		})
	}
	if _, ok := view.AgeAt(time.Time{}, time.Now(), time.UTC); ok {
		t.Error("a zero birthday gives an age")
	}
}

func TestAgeString(t *testing.T) {
	for age, want := range map[view.Age]string{
		{34, 8}: "34 years 8 months",
		{1, 1}:  "1 year 1 month",
		{0, 0}:  "0 years 0 months",
	} {
		if got := age.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", age, got, want)
		}
	}
}

// full is a profile as the pipeline stores it (README's quick start).
func full() map[string]string {
	return map[string]string{
		"customer_id":        "u-1001",
		"anonymous_id":       "a-7f3c",
		"email":              "Priya.Sharma@example.com",
		"phone":              "+919876543210",
		"birthday":           "1992-03-14",
		"customer_type":      "Gold",
		"city":               "Pune",
		"country":            "India",
		"latitude":           "18.5204",
		"longitude":          "73.8567",
		"timezone":           "Asia/Kolkata",
		"first_seen":         "2026-11-19T13:10:00.000Z",
		"first_seen_channel": "web",
		"last_seen":          "2026-11-27T21:05:44.500Z",
		"last_seen_channel":  "app",
		"app_launches":       "2",
		"web_visits":         "1",
		"created_at":         "2026-11-28T09:00:00.000Z",
		"updated_at":         "2026-11-28T09:00:01.000Z",
		"trait.plan":         "annual",
		"trait.beta":         "true",
	}
}

func rows(c view.Card) map[string]string {
	out := map[string]string{}
	for _, r := range c.Rows {
		out[r.Label] = r.Value
	}
	return out
}

func TestCardRows(t *testing.T) {
	now := instant("2026-11-28T09:15:02Z")
	tests := []struct {
		name   string
		fields map[string]string
		want   map[string]string // label -> value; labels not listed are not checked
		zone   string
	}{
		{
			name:   "every field, dates in the profile's zone",
			fields: full(),
			zone:   "Asia/Kolkata",
			want: map[string]string{
				"Location":           "Pune, India",
				"Coordinates":        "18.5204, 73.8567",
				"Email":              "Priya.Sharma@example.com",
				"Phone":              "+91 98765 43210 (IN)",
				"Initially acquired": "Nov 19, 2026 18:40 Asia/Kolkata, via web",
				// 21:05 UTC on Nov 27 is 02:35 on Nov 28 in Kolkata.
				"Last session":  "Nov 28, 2026 02:35 Asia/Kolkata, via app",
				"Age":           "34 years 8 months",
				"Birthday":      "Mar 14, 1992",
				"Customer Type": "Gold",
				"CustomerID":    "u-1001",
				"Timezone":      "Asia/Kolkata",
				"App launches":  "2",
				"Web visits":    "1",
				"Anonymous ID":  "a-7f3c",
			},
		},
		{
			name: "no timezone: dates in UTC, and the card says so",
			fields: map[string]string{
				"first_seen": "2026-11-19T13:10:00.000Z", "first_seen_channel": "web",
				"last_seen": "2026-11-27T21:05:44.500Z", "last_seen_channel": "app",
			},
			zone: "UTC",
			want: map[string]string{
				"Initially acquired": "Nov 19, 2026 13:10 UTC, via web",
				"Last session":       "Nov 27, 2026 21:05 UTC, via app",
				"Timezone":           view.NotSet,
			},
		},
		{
			name: "west of UTC the date moves back",
			fields: map[string]string{
				"timezone":  "America/Los_Angeles",
				"last_seen": "2026-11-28T03:00:00.000Z", "last_seen_channel": "web",
			},
			zone: "America/Los_Angeles",
			want: map[string]string{"Last session": "Nov 27, 2026 19:00 America/Los_Angeles, via web"},
		},
		{
			name:   "a profile with nothing but counters shows every other row as not set",
			fields: map[string]string{"app_launches": "0", "web_visits": "1"},
			zone:   "UTC",
			want: map[string]string{
				"Location": view.NotSet, "Coordinates": view.NotSet, "Email": view.NotSet,
				"Phone": view.NotSet, "Initially acquired": view.NotSet, "Last session": view.NotSet,
				"Age": view.NotSet, "Birthday": view.NotSet, "Customer Type": view.NotSet,
				"CustomerID": view.NotSet, "Timezone": view.NotSet, "Anonymous ID": view.NotSet,
				"App launches": "0", "Web visits": "1",
			},
		},
		{
			name:   "missing counters read as 0, never as not set",
			fields: map[string]string{"email": "x@y.io"},
			zone:   "UTC",
			want:   map[string]string{"App launches": "0", "Web visits": "0"},
		},
		{
			name:   "country without city; half a coordinate pair is no pair",
			fields: map[string]string{"country": "India", "latitude": "18.5"},
			zone:   "UTC",
			want:   map[string]string{"Location": "India", "Coordinates": view.NotSet},
		},
		{
			name:   "an unknown zone falls back to UTC but is shown as stored",
			fields: map[string]string{"timezone": "Mars/Olympus", "first_seen": "2026-11-19T13:10:00.000Z", "first_seen_channel": "app"},
			zone:   "UTC",
			want:   map[string]string{"Timezone": "Mars/Olympus", "Initially acquired": "Nov 19, 2026 13:10 UTC, via app"},
		},
		{
			name:   "unreadable stored values are shown, not hidden; no age from them",
			fields: map[string]string{"birthday": "14/03/1992", "phone": "12345", "first_seen": "yesterday"},
			zone:   "UTC",
			want:   map[string]string{"Birthday": "14/03/1992", "Age": view.NotSet, "Phone": "12345", "Initially acquired": "yesterday"},
		},
		{
			// 09:15 UTC on Nov 28 is 23:15 on Nov 27 in Honolulu: the
			// birthday has not begun there, though it has in UTC.
			name:   "age counts in the profile's zone",
			fields: map[string]string{"birthday": "2000-11-28", "timezone": "Pacific/Honolulu"},
			zone:   "Pacific/Honolulu",
			want:   map[string]string{"Age": "25 years 11 months", "Birthday": "Nov 28, 2000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := view.New("u-1001", tt.fields, now)
			if c.Zone != tt.zone {
				t.Errorf("Zone = %q, want %q", c.Zone, tt.zone)
			}
			got := rows(c)
			for label, want := range tt.want {
				if got[label] != want {
					t.Errorf("%s = %q, want %q", label, got[label], want)
				}
			}
			for _, r := range c.Rows {
				if r.Set == (r.Value == view.NotSet) {
					t.Errorf("row %s: Set=%v with value %q", r.Key, r.Set, r.Value)
				}
			}
		})
	}
}

func TestCardLabelsInOrder(t *testing.T) {
	c := view.New("x", nil, time.Now())
	var labels []string
	for _, r := range c.Rows {
		labels = append(labels, r.Label)
	}
	want := "Location|Coordinates|Email|Phone|Initially acquired|Last session|Age|Birthday|Customer Type|CustomerID|Timezone|App launches|Web visits|Anonymous ID|Linked anon IDs"
	if got := strings.Join(labels, "|"); got != want {
		t.Errorf("labels %s\nwant   %s", got, want)
	}
	// an anonymous profile has no linked ids of its own
	if r, ok := view.New("anon:x", nil, time.Now()).Row(view.RowLinkedIDs); ok {
		t.Errorf("anonymous card shows %+v", r)
	}
}

func TestLinkedCard(t *testing.T) {
	c := view.NewLinked("u-1001", full(), "anon:a-7f3c", []string{"a-7f3c", "b-2"}, instant("2026-11-28T09:15:02Z"))
	if r, _ := c.Row(view.RowLinkedIDs); r.Value != "2 (a-7f3c, b-2)" {
		t.Errorf("linked row = %q", r.Value)
	}
	if !strings.HasPrefix(c.Text(), "anon:a-7f3c is linked to u-1001\nProfile u-1001\n") {
		t.Errorf("text starts %q", c.Text()[:60])
	}
	m := c.Map()
	if m["linked_from"] != "anon:a-7f3c" || len(m["anonymous_ids"].([]string)) != 2 {
		t.Errorf("json: linked_from %v, anonymous_ids %v", m["linked_from"], m["anonymous_ids"])
	}
}

func TestTraitsSorted(t *testing.T) {
	c := view.New("x", full(), time.Now())
	if len(c.Traits) != 2 || c.Traits[0].Key != "beta" || c.Traits[1].Key != "plan" || c.Traits[1].Value != "annual" {
		t.Errorf("traits = %+v", c.Traits)
	}
}

func TestJSON(t *testing.T) {
	now := instant("2026-11-28T09:15:02Z")
	b, err := json.Marshal(view.New("u-1001", full(), now))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"id": "u-1001", "customer_id": "u-1001", "email": "Priya.Sharma@example.com", "phone": "+919876543210",
		"birthday": "1992-03-14", "first_seen": "2026-11-19T13:10:00.000Z", "trait.plan": "annual",
		"trait.beta":   "true", // traits stay strings: the hash does not keep their JSON type
		"app_launches": json.Number("2"), "web_visits": json.Number("1"),
		"latitude": json.Number("18.5204"), "longitude": json.Number("73.8567"),
	} {
		if got[k] != want {
			t.Errorf("%s = %#v, want %#v", k, got[k], want)
		}
	}
	age, _ := got["age"].(map[string]any)
	if age["years"] != json.Number("34") || age["months"] != json.Number("8") {
		t.Errorf("age = %v, want years 34, months 8", got["age"])
	}
	if len(got) != len(full())+3 {
		t.Errorf("%d keys, want the %d stored fields plus id, age and anonymous_ids", len(got), len(full()))
	}
	if ids, _ := got["anonymous_ids"].([]any); ids == nil || len(ids) != 0 {
		t.Errorf("anonymous_ids = %#v, want []", got["anonymous_ids"])
	}

	// Absent fields are omitted, as in Redis; counters are always there.
	b, _ = json.Marshal(view.New("anon:v", map[string]string{"web_visits": "3"}, now))
	if string(b) != `{"app_launches":0,"id":"anon:v","web_visits":3}` {
		t.Errorf("sparse profile JSON = %s", b)
	}
}

func TestText(t *testing.T) {
	got := view.New("u-1001", full(), instant("2026-11-28T09:15:02Z")).Text()
	want := `Profile u-1001
  Location            Pune, India
  Coordinates         18.5204, 73.8567
  Email               Priya.Sharma@example.com
  Phone               +91 98765 43210 (IN)
  Initially acquired  Nov 19, 2026 18:40 Asia/Kolkata, via web
  Last session        Nov 28, 2026 02:35 Asia/Kolkata, via app
  Age                 34 years 8 months
  Birthday            Mar 14, 1992
  Customer Type       Gold
  CustomerID          u-1001
  Timezone            Asia/Kolkata
  App launches        2
  Web visits          1
  Anonymous ID        a-7f3c
  Linked anon IDs     none
Custom traits
  beta  true
  plan  annual
`
	if got != want {
		t.Errorf("Text() =\n%s\nwant\n%s", got, want)
	}
}

func TestTextEscapesControlCharacters(t *testing.T) {
	got := view.New("u", map[string]string{"trait.note": "a\x1b[2Jb\rc"}, time.Now()).Text()
	if strings.ContainsAny(got, "\x1b\r") || !strings.Contains(got, `a\x1b[2Jb\x0dc`) {
		t.Errorf("control characters reach the terminal: %q", got)
	}
}
