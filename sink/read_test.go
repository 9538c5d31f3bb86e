package sink_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

func TestGet(t *testing.T) {
	c, prefix, _ := redisForTest(t)
	s := sink.New(c, sink.Config{KeyPrefix: prefix}, nil)
	apply(t, s,
		rec{ev(profile.KindWebVisit, "u/1 é", 1_700_000_000_000, "m1", "email", "x@y.io"), "t", 1},
		rec{ev(profile.KindAppLaunch, "u/1 é", 1_700_000_001_000, "m2"), "t", 2},
	)
	ctx := context.Background()

	h, err := sink.Get(ctx, c, prefix, "u/1 é")
	if err != nil {
		t.Fatal(err)
	}
	if h["email"] != "x@y.io" || h["app_launches"] != "1" || h["web_visits"] != "1" {
		t.Errorf("Get = %v", h)
	}
	for k := range h {
		if strings.HasPrefix(k, "t:") || k == "fs" || k == "ls" {
			t.Errorf("bookkeeping field %q in the profile", k)
		}
	}

	for _, id := range []string{"nobody", "", "anon:", "u/1 é}:m", "{u/1 é}", "a\nb", strings.Repeat("x", 300),
		strings.Repeat("x", profile.MaxIDBytes+1), "\xff\xfeuser", "anon:\xfe\xffuser", "u/1 \xc3"} {
		if _, err := sink.Get(ctx, c, prefix, id); !errors.Is(err, sink.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want ErrNotFound", id, err)
		}
	}
	for _, id := range []string{strings.Repeat("x", profile.MaxIDBytes), "anon:" + strings.Repeat("x", profile.MaxIDBytes)} {
		if err := c.HSet(ctx, sink.Key(prefix, id), "web_visits", "1").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Get(ctx, c, prefix, id); err != nil {
			t.Errorf("Get of a %d-byte id: %v", len(id), err)
		}
	}
	// An id that is not valid UTF-8 is never written (the decoder refuses
	// it rather than repair it); even a hash found under one, written by
	// some other writer, is not read as a profile.
	bad := "\xff\xfeuser"
	if err := c.HSet(ctx, sink.Key(prefix, bad), "web_visits", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Get(ctx, c, prefix, bad); !errors.Is(err, sink.ErrNotFound) {
		t.Errorf("Get of an id that is not valid UTF-8: %v, want ErrNotFound", err)
	}
	// another prefix is another deployment
	if _, err := sink.Get(ctx, c, prefix+"other:", "u/1 é"); !errors.Is(err, sink.ErrNotFound) {
		t.Errorf("Get under another prefix: %v, want ErrNotFound", err)
	}
}
