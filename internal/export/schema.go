// Package export streams every profile of a Redis (standalone or every
// master of a Cluster) into Parquet, CSV or JSON Lines, with simple
// segment filters, in constant memory: the bulk read that analysts need,
// which knows which keys are profiles and what type each field has.
package export

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/profiled/profiled/profile"
)

// Kind is the type of a column.
type Kind int

// The kinds of columns.
const (
	KindString    Kind = iota // text, as stored
	KindTimestamp             // an instant, milliseconds, UTC
	KindInt                   // a counter, int64
	KindDouble                // a coordinate, float64
	KindDate                  // a calendar date (birthday)
	KindTraits                // the custom traits: a map of string to string
	KindList                  // a list of strings (anonymous ids)
)

// Column is one column of the export: its name (the contract's field name,
// or id, traits, anonymous_ids) and its type.
type Column struct {
	Name string
	Kind Kind
}

// The columns that are not stored fields of the contract.
const (
	ColumnID           = "id"
	ColumnTraits       = "traits"
	ColumnAnonymousIDs = "anonymous_ids"
)

// Columns lists every column in file order. record's fields follow it.
var Columns = []Column{
	{ColumnID, KindString},
	{profile.FieldCustomerID, KindString},
	{profile.FieldAnonymousID, KindString},
	{profile.FieldEmail, KindString},
	{profile.FieldPhone, KindString},
	{profile.FieldBirthday, KindDate},
	{profile.FieldCustomerType, KindString},
	{profile.FieldCity, KindString},
	{profile.FieldCountry, KindString},
	{profile.FieldLatitude, KindDouble},
	{profile.FieldLongitude, KindDouble},
	{profile.FieldTimezone, KindString},
	{profile.FieldFirstSeen, KindTimestamp},
	{profile.FieldFirstSeenChannel, KindString},
	{profile.FieldLastSeen, KindTimestamp},
	{profile.FieldLastSeenChannel, KindString},
	{profile.FieldAppLaunches, KindInt},
	{profile.FieldWebVisits, KindInt},
	{profile.FieldCreatedAt, KindTimestamp},
	{profile.FieldUpdatedAt, KindTimestamp},
	{ColumnTraits, KindTraits},
	{ColumnAnonymousIDs, KindList},
}

// record is one Parquet row. Its fields are in the order of Columns and
// carry parquet-go's tags: optional (null when the profile lacks the
// field), timestamp(millisecond) (adjusted to UTC), date, map and list.
// Low-cardinality strings are dictionary-encoded.
type record struct {
	ID               string            `parquet:"id"`
	CustomerID       *string           `parquet:"customer_id,optional"`
	AnonymousID      *string           `parquet:"anonymous_id,optional"`
	Email            *string           `parquet:"email,optional"`
	Phone            *string           `parquet:"phone,optional"`
	Birthday         *int32            `parquet:"birthday,optional,date"` // days since 1970-01-01
	CustomerType     *string           `parquet:"customer_type,optional,dict"`
	City             *string           `parquet:"city,optional,dict"`
	Country          *string           `parquet:"country,optional,dict"`
	Latitude         *float64          `parquet:"latitude,optional"`
	Longitude        *float64          `parquet:"longitude,optional"`
	Timezone         *string           `parquet:"timezone,optional,dict"`
	FirstSeen        *time.Time        `parquet:"first_seen,optional,timestamp(millisecond)"`
	FirstSeenChannel *string           `parquet:"first_seen_channel,optional,dict"`
	LastSeen         *time.Time        `parquet:"last_seen,optional,timestamp(millisecond)"`
	LastSeenChannel  *string           `parquet:"last_seen_channel,optional,dict"`
	AppLaunches      int64             `parquet:"app_launches"`
	WebVisits        int64             `parquet:"web_visits"`
	CreatedAt        *time.Time        `parquet:"created_at,optional,timestamp(millisecond)"`
	UpdatedAt        *time.Time        `parquet:"updated_at,optional,timestamp(millisecond)"`
	Traits           map[string]string `parquet:"traits"`
	AnonymousIDs     []string          `parquet:"anonymous_ids,list"`
}

// columnIndex maps a column name to its index in Columns (and so in
// record's fields).
var columnIndex = func() map[string]int {
	m := make(map[string]int, len(Columns))
	for i, c := range Columns {
		m[c.Name] = i
	}
	if n := reflect.TypeFor[record]().NumField(); n != len(Columns) {
		panic(fmt.Sprintf("export: record has %d fields for %d columns", n, len(Columns)))
	}
	return m
}()

// SelectColumns returns the columns named in names (comma-separated, in
// that order), or every column for an empty list. An unknown or repeated
// name is an error that names it.
func SelectColumns(names string) ([]Column, error) {
	if strings.TrimSpace(names) == "" {
		return Columns, nil
	}
	var out []Column
	seen := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		i, ok := columnIndex[n]
		if !ok {
			return nil, fmt.Errorf("--fields: unknown field %q (known: %s)", n, columnNames())
		}
		if seen[n] {
			return nil, fmt.Errorf("--fields: %q is listed twice", n)
		}
		seen[n] = true
		out = append(out, Columns[i])
	}
	return out, nil
}

func columnNames() string {
	names := make([]string, len(Columns))
	for i, c := range Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// Profile is one profile as read from Redis.
type Profile struct {
	// ID is the profile id (a user id, or anon: + an anonymous id).
	ID string
	// Fields are the profile hash's fields, as stored.
	Fields map[string]string
	// AnonymousIDs are the anonymous ids linked to a user, sorted; nil for
	// an anonymous profile.
	AnonymousIDs []string
}

// Traits returns the custom traits, keyed without the trait. prefix.
func (p Profile) Traits() map[string]string {
	out := map[string]string{}
	for k, v := range p.Fields {
		if key, ok := strings.CutPrefix(k, profile.TraitPrefix); ok {
			out[key] = v
		}
	}
	return out
}

// counter reads a counter; both exist on every profile, and one written
// before that rule counts 0, as the read API shows it.
func (p Profile) counter(name string) (int64, bool) {
	v, ok := p.Fields[name]
	if !ok {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// record converts p to a Parquet row. bad counts the stored values that
// do not read as their column's type (profiled never writes such values;
// they are exported as null, or 0 for a counter, rather than stopping the
// export).
func (p Profile) record() (r record, bad int) {
	// one allocation backs every pointer of the record, rather than one
	// per field: the export's cost is mostly allocation
	back := new(struct {
		s  [11]string
		t  [4]time.Time
		f  [2]float64
		d  int32
		ns int
		nt int
		nf int
	})
	str := func(name string) *string {
		v, ok := p.Fields[name]
		if !ok {
			return nil
		}
		sp := &back.s[back.ns]
		back.ns++
		*sp = v
		return sp
	}
	ts := func(name string) *time.Time {
		return parsed(p.Fields, name, parseTime, back.t[:], &back.nt, &bad)
	}
	num := func(name string) *float64 {
		return parsed(p.Fields, name, parseNumber, back.f[:], &back.nf, &bad)
	}
	cnt := func(name string) int64 {
		n, ok := p.counter(name)
		if !ok {
			bad++
		}
		return n
	}
	r = record{
		ID:               p.ID,
		CustomerID:       str(profile.FieldCustomerID),
		AnonymousID:      str(profile.FieldAnonymousID),
		Email:            str(profile.FieldEmail),
		Phone:            str(profile.FieldPhone),
		CustomerType:     str(profile.FieldCustomerType),
		City:             str(profile.FieldCity),
		Country:          str(profile.FieldCountry),
		Latitude:         num(profile.FieldLatitude),
		Longitude:        num(profile.FieldLongitude),
		Timezone:         str(profile.FieldTimezone),
		FirstSeen:        ts(profile.FieldFirstSeen),
		FirstSeenChannel: str(profile.FieldFirstSeenChannel),
		LastSeen:         ts(profile.FieldLastSeen),
		LastSeenChannel:  str(profile.FieldLastSeenChannel),
		AppLaunches:      cnt(profile.FieldAppLaunches),
		WebVisits:        cnt(profile.FieldWebVisits),
		CreatedAt:        ts(profile.FieldCreatedAt),
		UpdatedAt:        ts(profile.FieldUpdatedAt),
		Traits:           p.Traits(),
		AnonymousIDs:     p.AnonymousIDs,
	}
	if v, ok := p.Fields[profile.FieldBirthday]; ok {
		if d, err := time.Parse(time.DateOnly, v); err == nil {
			back.d = int32(d.Unix() / 86400) // dates before 1970 are whole negative days too
			r.Birthday = &back.d
		} else {
			bad++
		}
	}
	if r.AnonymousIDs == nil {
		r.AnonymousIDs = []string{}
	}
	return r, bad
}

// parsed parses the field name of fields with parse into the next free
// slot of slots (*used counts the slots taken): nil when the field is
// absent, and nil with *bad counted when it does not parse.
func parsed[T any](fields map[string]string, name string, parse func(string) (T, error), slots []T, used, bad *int) *T {
	v, ok := fields[name]
	if !ok {
		return nil
	}
	x, err := parse(v)
	if err != nil {
		*bad++
		return nil
	}
	sp := &slots[*used]
	*used++
	*sp = x
	return sp
}

func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	return t.UTC(), err
}

func parseNumber(v string) (float64, error) { return strconv.ParseFloat(v, 64) }

// csvValue is the CSV cell of column c: the stored text (times, numbers
// and dates exactly as stored), empty when absent; counters 0 when
// absent; traits as one JSON object and anonymous ids as one JSON array.
func (p Profile) csvValue(c Column) string {
	switch c.Name {
	case ColumnID:
		return p.ID
	case ColumnTraits:
		b, _ := json.Marshal(p.Traits()) // a map of strings always encodes
		return string(b)
	case ColumnAnonymousIDs:
		ids := p.AnonymousIDs
		if ids == nil {
			ids = []string{}
		}
		b, _ := json.Marshal(ids)
		return string(b)
	}
	if c.Kind == KindInt {
		if _, ok := p.Fields[c.Name]; !ok {
			return "0"
		}
	}
	return p.Fields[c.Name]
}
