package sink

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
)

// ErrNotFound is returned by Get for an id that has no profile.
var ErrNotFound = errors.New("profile not found")

// Get reads the stored fields of profile id (a user id, or anon: + an
// anonymous id) under prefix. It returns ErrNotFound when the profile does
// not exist, and without asking Redis when id cannot name a profile (empty,
// too long, braces or control characters): such an id would build a key
// outside the profile's hash tag. The profile hash holds only profile
// fields, and one HGETALL reads it whole, so a reader never sees half of
// an event (each event's effect is one script call).
func Get(ctx context.Context, client redis.UniversalClient, prefix, id string) (map[string]string, error) {
	if !possibleID(id) {
		return nil, ErrNotFound
	}
	h, err := client.HGetAll(ctx, Key(prefix, id)).Result()
	if err != nil {
		return nil, err
	}
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	return h, nil
}

// possibleID reports whether id could be a profile id: the decoder's
// identity rules, less the configurable junk list, which only decides what
// is written.
func possibleID(id string) bool {
	if id == "" || len(id) > profile.MaxIDBytes+len("anon:") {
		return false
	}
	return !strings.ContainsFunc(id, func(r rune) bool {
		return r == '{' || r == '}' || r < 0x20 || (r >= 0x7f && r < 0xa0)
	})
}
