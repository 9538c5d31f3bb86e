package export

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/profiled/profiled/profile"
)

// Filter selects profiles: every condition must hold. The zero Filter
// selects every profile.
type Filter struct {
	// Where maps a field (a contract field name, id, or trait.<key>) to
	// the values it may have: a profile matches when its field equals one
	// of them exactly, byte for byte, as stored. A counter that is absent
	// equals "0".
	Where map[string][]string
	// ActiveSince, when set, keeps profiles whose last_seen is at or
	// after it.
	ActiveSince time.Time
	// AcquiredSince, when set, keeps profiles whose first_seen is at or
	// after it.
	AcquiredSince time.Time
}

// AddWhere parses one FIELD=VALUE condition. Conditions on one field
// accumulate as alternatives (country=IN, country=US: either); conditions
// on different fields must all hold. An unknown field is an error that
// names it.
func (f *Filter) AddWhere(cond string) error {
	name, value, ok := strings.Cut(cond, "=")
	if !ok {
		return fmt.Errorf("--where %q: want FIELD=VALUE", cond)
	}
	if !filterable(name) {
		return fmt.Errorf("--where %q: unknown field %q (a contract field, id, or trait.<key>)", cond, name)
	}
	if f.Where == nil {
		f.Where = map[string][]string{}
	}
	f.Where[name] = append(f.Where[name], value)
	return nil
}

func filterable(name string) bool {
	if key, ok := strings.CutPrefix(name, profile.TraitPrefix); ok {
		return key != ""
	}
	i, ok := columnIndex[name]
	return ok && Columns[i].Kind != KindTraits && Columns[i].Kind != KindList
}

func (f Filter) empty() bool {
	return len(f.Where) == 0 && f.ActiveSince.IsZero() && f.AcquiredSince.IsZero()
}

// Match reports whether p passes every condition of f.
func (f Filter) Match(p Profile) bool {
	for name, values := range f.Where {
		var v string
		var has bool
		if name == ColumnID {
			v, has = p.ID, true
		} else {
			v, has = p.Fields[name]
		}
		if !has && (name == profile.FieldAppLaunches || name == profile.FieldWebVisits) {
			v, has = "0", true
		}
		if !has || !contains(values, v) {
			return false
		}
	}
	return since(p.Fields[profile.FieldLastSeen], f.ActiveSince) &&
		since(p.Fields[profile.FieldFirstSeen], f.AcquiredSince)
}

func contains(values []string, v string) bool {
	for _, x := range values {
		if x == v {
			return true
		}
	}
	return false
}

// since reports whether the stored time is at or after cutoff; with no
// cutoff, always; a profile without the time (or with one that does not
// parse) never is.
func since(stored string, cutoff time.Time) bool {
	if cutoff.IsZero() {
		return true
	}
	t, err := time.Parse(time.RFC3339Nano, stored)
	return err == nil && !t.Before(cutoff)
}

// days matches a leading count of days: "7d", "1d12h".
var days = regexp.MustCompile(`^(\d+)d(.*)$`)

// ParseSince reads the argument of --active-since and --acquired-since:
// a duration back from now ("7d", "36h", "1d12h30m": Go's durations plus
// days of 24 hours), a date ("2026-11-01", midnight UTC) or an RFC 3339
// time. The error names the flag.
func ParseSince(flag, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	d, err := parseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("--%s %q: want a duration (7d, 36h), a date (2026-11-01) or an RFC 3339 time", flag, s)
	}
	return now.Add(-d), nil
}

func parseDuration(s string) (time.Duration, error) {
	m := days.FindStringSubmatch(s)
	if m == nil {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > 100000 {
		return 0, fmt.Errorf("%q: too many days", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if m[2] == "" {
		return d, nil
	}
	rest, err := time.ParseDuration(m[2])
	if err != nil {
		return 0, err
	}
	return d + rest, nil
}
