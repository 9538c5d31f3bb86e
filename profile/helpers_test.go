package profile

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Fixed clocks: no test reads the wall clock.
var (
	testNow    = time.Date(2026, 11, 28, 9, 15, 2, 123456789, time.UTC)
	testRecord = time.Date(2026, 11, 28, 9, 10, 0, 987654321, time.UTC)
	// testTS is the event time most fixtures carry.
	testTS   = "2026-11-28T09:00:00.000Z"
	testTSMs = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC).UnixMilli()
)

func newTestDecoder(t testing.TB, edit func(*Config)) *Decoder {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	d, err := NewDecoder(cfg)
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	return d
}

// asRejection returns err as a *Rejection, failing the test when it is some
// other error.
func asRejection(t testing.TB, err error) *Rejection {
	t.Helper()
	if err == nil {
		return nil
	}
	var r *Rejection
	if !errors.As(err, &r) {
		t.Fatalf("error %v (%T) is not a *Rejection", err, err)
	}
	return r
}

// fieldMap returns the event's fields by name, failing on a duplicate name.
func fieldMap(t testing.TB, ev Event) map[string]string {
	t.Helper()
	m := make(map[string]string, len(ev.Fields))
	for _, f := range ev.Fields {
		if _, dup := m[f.Name]; dup {
			t.Fatalf("field %q set twice in one event", f.Name)
		}
		m[f.Name] = f.Value
	}
	return m
}

func knownReason(r string) bool { return slices.Contains(RejectReasons, r) }
