package sink

import (
	"context"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
)

// Found is what a read of one id finds.
type Found struct {
	// ID is the id of the profile read: the user's, when the id asked for
	// was an anonymous id linked to it.
	ID string
	// Fields are the profile hash's fields.
	Fields map[string]string
	// LinkedFrom is the id asked for ("anon:<A>") when the read followed
	// its link to ID; empty otherwise.
	LinkedFrom string
	// AnonymousIDs are the anonymous ids linked to ID (the user's), sorted.
	AnonymousIDs []string
}

// LinkedError is the error Read returns for an anonymous id linked to a
// user that has no profile yet. It matches ErrNotFound.
type LinkedError struct {
	From, User string
}

// Error implements error.
func (e *LinkedError) Error() string {
	return fmt.Sprintf("%s is linked to %s, which has no profile yet", e.From, e.User)
}

// Is makes a LinkedError match ErrNotFound.
func (e *LinkedError) Is(target error) bool { return target == ErrNotFound }

// Read reads profile id like Get, following the link of an anonymous id
// to its user (contract section 2a), and lists the anonymous ids linked to
// the profile it reads. The link is read first: a link never changes, so
// the user's profile read after it is the person's.
func Read(ctx context.Context, client redis.UniversalClient, prefix, id string) (Found, error) {
	f := Found{ID: id}
	if profile.ValidateProfileID(id) != nil {
		return f, ErrNotFound
	}
	if anon, ok := profile.AnonID(id); ok {
		user, err := client.Get(ctx, LinkKey(prefix, anon)).Result()
		switch {
		case err == redis.Nil:
		case err != nil:
			return f, err
		default:
			f.ID, f.LinkedFrom = user, id
		}
	}
	// the hash and its links are in one slot: one round trip, one
	// transaction, so the list matches the profile
	var h *redis.MapStringStringCmd
	var links *redis.MapStringStringCmd
	_, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, Key(prefix, f.ID))
		links = p.HGetAll(ctx, LinksKey(prefix, f.ID))
		return nil
	})
	if err != nil {
		return f, err
	}
	f.Fields = h.Val()
	if len(f.Fields) == 0 {
		if f.LinkedFrom != "" {
			return f, &LinkedError{From: f.LinkedFrom, User: f.ID}
		}
		return f, ErrNotFound
	}
	for a, st := range links.Val() {
		if st == "f" {
			f.AnonymousIDs = append(f.AnonymousIDs, a)
		}
	}
	sort.Strings(f.AnonymousIDs)
	return f, nil
}
