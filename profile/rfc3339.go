package profile

import "time"

// parseRFC3339 reads an RFC 3339 date-time (section 5.6 of the RFC) as the
// contract's section 3 reads event times, cut to milliseconds:
//
//	YYYY-MM-DD ("T" | "t") hh:mm:ss [ "." 1*DIGIT ] ( "Z" | "z" | ("+" | "-") hh:mm )
//
// time.Parse(time.RFC3339Nano, ...) differs from the RFC both ways, so it
// is not used: it refuses a lower-case "t" or "z" and a leap second, and it
// accepts offsets of +24:00 and beyond, a comma before the fraction and
// one-digit hours. A leap second ":60" is the last millisecond of that
// minute (hh:mm:59.999), since a Unix time has no room for it; the offset's
// hours are at most 23 and its minutes at most 59. The year is the four
// digits as written (the range check comes after).
func parseRFC3339(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") {
		return time.Time{}, false
	}
	year, ok1 := digitsAt(s, 0, 4)
	month, ok2 := digitsAt(s, 5, 2)
	day, ok3 := digitsAt(s, 8, 2)
	hour, ok4 := digitsAt(s, 11, 2)
	minute, ok5 := digitsAt(s, 14, 2)
	sec, ok6 := digitsAt(s, 17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	i, ms := 19, 0
	if s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 3 {
				ms = ms*10 + int(s[i]-'0')
			}
			i++
		}
		switch n := i - start; {
		case n == 0:
			return time.Time{}, false
		case n == 1:
			ms *= 100
		case n == 2:
			ms *= 10
		}
	}
	if i >= len(s) {
		return time.Time{}, false
	}
	offset := 0 // seconds east of UTC
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		oh, ok1 := digitsAt(s, i+1, 2)
		om, ok2 := digitsAt(s, i+4, 2)
		if !ok1 || !ok2 || s[i+3] != ':' || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(s) {
		return time.Time{}, false
	}
	if sec == 60 {
		sec, ms = 59, 999
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// digitsAt reads the n decimal digits at s[i:i+n].
func digitsAt(s string, i, n int) (int, bool) {
	if i < 0 || i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// daysIn returns the number of days of month m in year y.
func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
