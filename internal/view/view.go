// Package view turns a stored profile (the Redis hash of the contract's
// section 6) into the profile card that people and programs read: labelled
// rows with display values, the age computed at read time, and a JSON form.
//
// The package is pure: it imports no Redis, HTTP, logging or metrics
// package, so profilectl, the read API and the tests render the same card
// from the same map.
package view

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // a profile's zone must resolve the same on every machine

	"github.com/nyaruka/phonenumbers"

	"github.com/profiled/profiled/profile"
)

// NotSet is the value shown for a field the profile does not have. A
// missing field is never shown as a zero value: "0 years" or "Jan 1, 0001"
// would read as data.
const NotSet = "not set"

// Row keys: stable names of the card's rows, for icons, styling and tests.
const (
	RowLocation     = "location"
	RowCoordinates  = "coordinates"
	RowEmail        = "email"
	RowPhone        = "phone"
	RowFirstSeen    = "first_seen"
	RowLastSeen     = "last_seen"
	RowAge          = "age"
	RowBirthday     = "birthday"
	RowCustomerType = "customer_type"
	RowCustomerID   = "customer_id"
	RowTimezone     = "timezone"
	RowAppLaunches  = "app_launches"
	RowWebVisits    = "web_visits"
	RowAnonymousID  = "anonymous_id"
	RowLinkedIDs    = "anonymous_ids"
)

// Row is one line of the card.
type Row struct {
	// Key names the row (one of the Row* constants, or the trait's key for
	// a custom trait).
	Key string
	// Label is what a person reads beside the value.
	Label string
	// Value is the display form, or NotSet.
	Value string
	// Set is false when the profile lacks the field(s) behind the row.
	Set bool
}

// Age is a person's age in whole years and the whole months past them.
type Age struct {
	Years  int `json:"years"`
	Months int `json:"months"`
}

// String renders the age as "33 years 8 months".
func (a Age) String() string {
	return plural(a.Years, "year") + " " + plural(a.Months, "month")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// Card is the profile card of one profile, computed at one instant.
type Card struct {
	// ID is the profile id (a user id, or anon: + an anonymous id).
	ID string
	// Rows are the card's fixed rows, in display order.
	Rows []Row
	// Traits are the custom traits, sorted by key; labels are the keys.
	Traits []Row
	// Zone names the zone that dates are shown in: the profile's timezone
	// when it has a valid one, else "UTC".
	Zone string
	// Age is set when the profile has a birthday that can be read.
	Age *Age
	// LinkedFrom is the anonymous profile id ("anon:<A>") that was asked
	// for when the card is its user's: A is linked to ID.
	LinkedFrom string
	// AnonymousIDs are the anonymous ids linked to this user, sorted.
	AnonymousIDs []string

	fields map[string]string
}

// dateLayout is how dates read on the card: "Mar 14, 1992".
const dateLayout = "Jan 2, 2006"

// New builds the card of profile id from its stored fields, as of now.
// Values that do not parse (which profiled never writes) are shown as
// stored rather than hidden.
func New(id string, fields map[string]string, now time.Time) Card {
	return NewLinked(id, fields, "", nil, now)
}

// NewLinked is New for a read that followed a link: linkedFrom is the
// anonymous profile id asked for (empty when none), anon the anonymous ids
// linked to the user id.
func NewLinked(id string, fields map[string]string, linkedFrom string, anon []string, now time.Time) Card {
	c := Card{ID: id, fields: fields, Zone: "UTC", LinkedFrom: linkedFrom, AnonymousIDs: anon}
	loc := time.UTC
	tz, hasTZ := fields[profile.FieldTimezone]
	if hasTZ && tz != "" && tz != "Local" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc, c.Zone = l, tz
		}
	}

	bdText, hasBD := fields[profile.FieldBirthday]
	bdValue := bdText
	if hasBD {
		if d, err := time.Parse("2006-01-02", bdText); err == nil {
			bdValue = d.Format(dateLayout)
			if a, ok := AgeAt(d, now, loc); ok {
				c.Age = &a
			}
		}
	}
	ageValue := ""
	if c.Age != nil {
		ageValue = c.Age.String()
	}

	c.Rows = []Row{
		row(RowLocation, "Location", joinSet(", ", fields[profile.FieldCity], fields[profile.FieldCountry])),
		row(RowCoordinates, "Coordinates", pair(fields[profile.FieldLatitude], fields[profile.FieldLongitude])),
		row(RowEmail, "Email", fields[profile.FieldEmail]),
		row(RowPhone, "Phone", phone(fields[profile.FieldPhone])),
		row(RowFirstSeen, "Initially acquired", seen(fields[profile.FieldFirstSeen], fields[profile.FieldFirstSeenChannel], loc, c.Zone)),
		row(RowLastSeen, "Last session", seen(fields[profile.FieldLastSeen], fields[profile.FieldLastSeenChannel], loc, c.Zone)),
		row(RowAge, "Age", ageValue),
		row(RowBirthday, "Birthday", bdValue),
		row(RowCustomerType, "Customer Type", fields[profile.FieldCustomerType]),
		row(RowCustomerID, "CustomerID", fields[profile.FieldCustomerID]),
		row(RowTimezone, "Timezone", tz),
		row(RowAppLaunches, "App launches", count(fields, profile.FieldAppLaunches)),
		row(RowWebVisits, "Web visits", count(fields, profile.FieldWebVisits)),
		row(RowAnonymousID, "Anonymous ID", fields[profile.FieldAnonymousID]),
	}
	if _, anonymous := profile.AnonID(id); !anonymous {
		c.Rows = append(c.Rows, row(RowLinkedIDs, "Linked anon IDs", linked(anon)))
	}
	for k, v := range fields {
		if key, ok := strings.CutPrefix(k, profile.TraitPrefix); ok {
			c.Traits = append(c.Traits, Row{Key: key, Label: key, Value: v, Set: true})
		}
	}
	sort.Slice(c.Traits, func(i, j int) bool { return c.Traits[i].Key < c.Traits[j].Key })
	return c
}

// linked shows how many anonymous ids (devices, browsers) the person
// used before signing in, and which: "2 (a-1, a-2)".
func linked(anon []string) string {
	if len(anon) == 0 {
		return "none"
	}
	return strconv.Itoa(len(anon)) + " (" + strings.Join(anon, ", ") + ")"
}

func row(key, label, value string) Row {
	if strings.TrimSpace(value) == "" {
		return Row{Key: key, Label: label, Value: NotSet}
	}
	return Row{Key: key, Label: label, Value: value, Set: true}
}

// Row returns the row with key, and whether the card has it.
func (c Card) Row(key string) (Row, bool) {
	for _, r := range c.Rows {
		if r.Key == key {
			return r, true
		}
	}
	return Row{}, false
}

// joinSet joins the non-empty parts: a profile with a country but no city
// shows the country alone.
func joinSet(sep string, parts ...string) string {
	var set []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			set = append(set, p)
		}
	}
	return strings.Join(set, sep)
}

// pair shows the coordinates only as a pair: profiled stores them as one
// value, so half a pair is not data.
func pair(lat, lon string) string {
	if lat == "" || lon == "" {
		return ""
	}
	return lat + ", " + lon
}

// phone shows an E.164 number in international format with its region,
// "+91 98765 43210 (IN)", so the country code stands apart.
func phone(e164 string) string {
	if e164 == "" {
		return ""
	}
	num, err := phonenumbers.Parse(e164, "ZZ")
	if err != nil {
		return e164
	}
	s := phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
	if region := phonenumbers.GetRegionCodeForNumber(num); region != "" && region != "ZZ" && region != "001" {
		s += " (" + region + ")"
	}
	return s
}

// seen shows a first or last seen time in the card's zone, naming the zone,
// with the channel: "Nov 19, 2026 18:40 Asia/Kolkata, via web".
func seen(stored, channel string, loc *time.Location, zone string) string {
	if stored == "" {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, stored)
	if err != nil {
		return joinSet(", via ", stored, channel)
	}
	s := t.In(loc).Format(dateLayout+" 15:04") + " " + zone
	if channel != "" {
		s += ", via " + channel
	}
	return s
}

func count(fields map[string]string, name string) string {
	// Both counters exist on every profile; a profile written before that
	// rule shows 0, which is what the counter means.
	if v, ok := fields[name]; ok {
		return v
	}
	return "0"
}

// AgeAt returns the age at now of a person born on birthday (a date; only
// its year, month and day are read), with "today" taken in loc: a birthday
// begins at midnight where the person lives. A birthday on a day that a
// month or year lacks (Feb 29, or the 31st) is reached on the first day
// after it, the day a month without that date ends: someone born on
// Feb 29 turns a year older on Mar 1 in common years. A birthday after
// today gives 0 years 0 months rather than a negative age; ok is false only
// for a zero birthday.
func AgeAt(birthday, now time.Time, loc *time.Location) (Age, bool) {
	if birthday.IsZero() {
		return Age{}, false
	}
	if loc == nil {
		loc = time.UTC
	}
	by, bm, bd := birthday.Date()
	ny, nm, nd := now.In(loc).Date()
	months := (ny-by)*12 + int(nm) - int(bm)
	if nd < bd {
		months-- // this month's anniversary has not come yet
	}
	if months < 0 {
		return Age{}, true
	}
	return Age{Years: months / 12, Months: months % 12}, true
}

// counters and numbers are JSON numbers; every other field is a string,
// as stored. Custom traits stay strings: the hash does not record whether
// "42" was sent as a number or a string.
var numericFields = map[string]bool{
	profile.FieldAppLaunches: true,
	profile.FieldWebVisits:   true,
	profile.FieldLatitude:    true,
	profile.FieldLongitude:   true,
}

// Map returns the card's JSON object: the profile's stored fields under the
// contract's names (absent fields are omitted, as in Redis), "id", and
// "age" ({"years", "months"}) when the birthday gives one. Counters and
// coordinates are JSON numbers written exactly as stored.
func (c Card) Map() map[string]any {
	out := make(map[string]any, len(c.fields)+2)
	for k, v := range c.fields {
		if numericFields[k] {
			if _, err := strconv.ParseFloat(v, 64); err == nil {
				out[k] = json.Number(v)
				continue
			}
		}
		out[k] = v
	}
	for _, k := range []string{profile.FieldAppLaunches, profile.FieldWebVisits} {
		if _, ok := out[k]; !ok {
			out[k] = json.Number("0")
		}
	}
	out["id"] = c.ID
	if c.LinkedFrom != "" {
		out["linked_from"] = c.LinkedFrom
	}
	if _, anonymous := profile.AnonID(c.ID); !anonymous {
		ids := c.AnonymousIDs
		if ids == nil {
			ids = []string{}
		}
		out["anonymous_ids"] = ids
	}
	if c.Age != nil {
		out["age"] = *c.Age
	}
	return out
}

// MarshalJSON encodes Map; keys come out sorted, so output is stable.
func (c Card) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.Map())
}

// Text renders the card for a terminal: the id, one aligned row per line,
// then the custom traits.
func (c Card) Text() string {
	var b strings.Builder
	if c.LinkedFrom != "" {
		fmt.Fprintf(&b, "%s is linked to %s\n", printable(c.LinkedFrom), printable(c.ID))
	}
	fmt.Fprintf(&b, "Profile %s\n", printable(c.ID))
	width := 0
	for _, r := range c.Rows {
		width = max(width, len(r.Label))
	}
	for _, r := range c.Rows {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, r.Label, printable(r.Value))
	}
	if len(c.Traits) == 0 {
		fmt.Fprintf(&b, "Custom traits: none\n")
		return b.String()
	}
	fmt.Fprintf(&b, "Custom traits\n")
	tw := 0
	for _, r := range c.Traits {
		tw = max(tw, len(r.Label))
	}
	for _, r := range c.Traits {
		fmt.Fprintf(&b, "  %-*s  %s\n", tw, printable(r.Label), printable(r.Value))
	}
	return b.String()
}

// printable escapes control characters: trait values come from event
// senders, and a terminal would act on an escape sequence or a carriage
// return inside one.
func printable(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
