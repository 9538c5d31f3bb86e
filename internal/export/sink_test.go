package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// Profiles as profiled's own sink writes them, with a link made: the
// anonymous id linked to u1 is not a row of its own, u1's row lists it,
// the unlinked anonymous id is a row. On miniredis, or on the real Redis
// of make test.
func TestExportOfSinkWrittenProfiles(t *testing.T) {
	var c redis.UniversalClient
	if os.Getenv(testenv.EnvRedisURL) != "" && !testing.Short() {
		c = testenv.RealRedis(t)
	} else {
		_, c = miniClient(t)
	}
	prefix := testenv.Unique(t, "sink") + ":"
	s := sink.New(c, sink.Config{KeyPrefix: prefix}, nil)
	const ms = int64(1_764_000_000_000)
	event := func(kind profile.Kind, id string, at int64, mid string, fields ...string) *profile.Update {
		e := profile.Event{Kind: kind, ProfileID: id, Time: at, MessageID: mid}
		for i := 0; i+1 < len(fields); i += 2 {
			e.Fields = append(e.Fields, profile.Field{Name: fields[i], Value: fields[i+1]})
		}
		u := profile.NewUpdate(id)
		u.Add(e, "t", at-ms)
		return u
	}
	ctx := context.Background()
	steps := [][]*profile.Update{
		{event(profile.KindWebVisit, "anon:a1", ms+1, "m1", "anonymous_id", "a1", "city", "Pune")},
		{event(profile.KindWebVisit, "anon:a2", ms+2, "m2", "anonymous_id", "a2")},
		{event(profile.KindAppLaunch, "u1", ms+3, "m3", "customer_id", "u1", "email", "x@y.io")},
	}
	alias := profile.NewUpdate("u1")
	alias.Add(profile.Event{Kind: profile.KindAlias, ProfileID: "u1", Time: ms + 4, LinkAnonID: "a1"}, "t", 4)
	steps = append(steps, []*profile.Update{alias})
	for _, ups := range steps {
		if err := s.Apply(ctx, ups); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if _, err := Export(ctx, &Source{Client: c, Prefix: prefix}, &out, Options{Format: FormatJSONL, Now: testNow}); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		got[m["id"].(string)] = m
	}
	if len(got) != 2 || got["u1"] == nil || got["anon:a2"] == nil {
		t.Fatalf("rows %v, want u1 and anon:a2", got)
	}
	u1 := got["u1"]
	if ids, _ := json.Marshal(u1["anonymous_ids"]); string(ids) != `["a1"]` || u1["city"] != "Pune" || u1["web_visits"] != 1.0 || u1["app_launches"] != 1.0 {
		t.Fatalf("u1 = %v: want a1's history and id in it", u1)
	}
}
