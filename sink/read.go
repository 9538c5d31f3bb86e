package sink

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
)

// ErrNotFound is returned by Get for an id that has no profile.
var ErrNotFound = errors.New("profile not found")

// Get reads the stored fields of profile id (a user id, or anon: + an
// anonymous id) under prefix. It returns ErrNotFound when the profile does
// not exist, and without asking Redis when id cannot name a profile
// (profile.ValidateProfileID: empty, too long, not valid UTF-8, braces or
// control characters): such an id is never written, and one with braces
// would build a key outside the profile's hash tag. The profile hash holds
// only profile fields, and one HGETALL reads it whole, so a reader never
// sees half of an event (each event's effect is one script call).
func Get(ctx context.Context, client redis.UniversalClient, prefix, id string) (map[string]string, error) {
	if profile.ValidateProfileID(id) != nil {
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
