package export

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// testNow is the instant the generated profiles are relative to.
var testNow = time.Date(2026, 11, 28, 9, 15, 2, 123e6, time.UTC)

// person is one generated profile: what the test writes to Redis and
// what it expects back, field by field.
type person struct {
	id     string
	fields map[string]string
	links  map[string]string // anonymous id -> 'f' or 'r' (users only)
}

func (p person) anonIDs() []string {
	var out []string
	for a, st := range p.links {
		if st == "f" {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// generate makes n profiles as profiled stores them: a quarter anonymous,
// fields present or absent at random, values that CSV must quote (commas,
// quotes, newlines) and non-ASCII text.
func generate(seed uint64, n int) []person {
	r := rand.New(rand.NewPCG(seed, 42))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	maybe := func() bool { return r.IntN(3) > 0 }
	out := make([]person, n)
	for i := range out {
		p := person{fields: map[string]string{}}
		if i%4 == 3 {
			p.id = fmt.Sprintf("anon:a-%d-%d", seed, i)
			p.fields[profile.FieldAnonymousID] = strings.TrimPrefix(p.id, "anon:")
		} else {
			p.id = fmt.Sprintf("u-%d-%d", seed, i)
			p.fields[profile.FieldCustomerID] = p.id
			if maybe() {
				p.fields[profile.FieldAnonymousID] = fmt.Sprintf("dev-%d", i)
			}
			p.links = map[string]string{}
			for j := range r.IntN(3) {
				p.links[fmt.Sprintf("l-%d-%d", i, j)] = pick("f", "f", "r")
			}
		}
		set := func(k, v string) {
			if maybe() {
				p.fields[k] = v
			}
		}
		set(profile.FieldEmail, fmt.Sprintf("Person.%d@example.com", i))
		set(profile.FieldPhone, fmt.Sprintf("+9198765%05d", i%100000))
		set(profile.FieldBirthday, fmt.Sprintf("%d-%02d-%02d", 1940+r.IntN(80), 1+r.IntN(12), 1+r.IntN(28)))
		set(profile.FieldCustomerType, pick("Gold", "Silver", "Bronze"))
		set(profile.FieldCity, pick("Pune", "Bengaluru", "São Paulo", "Washington, D.C."))
		set(profile.FieldCountry, pick("IN", "BR", "US"))
		set(profile.FieldTimezone, pick("Asia/Kolkata", "America/Sao_Paulo", "UTC"))
		if maybe() {
			p.fields[profile.FieldLatitude] = strconv.FormatFloat(r.Float64()*180-90, 'f', -1, 64)
			p.fields[profile.FieldLongitude] = pick("73.8567", "-46.6333", "10", "-0.5")
		}
		first := testNow.Add(-time.Duration(r.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Millisecond)
		last := first.Add(time.Duration(r.Int64N(int64(testNow.Sub(first)) + 1))).Truncate(time.Millisecond)
		if maybe() {
			p.fields[profile.FieldFirstSeen] = stamp(first)
			p.fields[profile.FieldFirstSeenChannel] = pick("app", "web")
			p.fields[profile.FieldLastSeen] = stamp(last)
			p.fields[profile.FieldLastSeenChannel] = pick("app", "web")
		}
		if maybe() { // profiles written before both counters were kept lack them
			p.fields[profile.FieldAppLaunches] = strconv.Itoa(r.IntN(50))
			p.fields[profile.FieldWebVisits] = strconv.Itoa(r.IntN(50))
		}
		p.fields[profile.FieldCreatedAt] = stamp(first.Add(time.Second))
		p.fields[profile.FieldUpdatedAt] = stamp(last.Add(time.Second))
		for j := range r.IntN(4) {
			key := pick("plan", "référé", "note", "x")
			p.fields[profile.TraitPrefix+key+strconv.Itoa(j)] = pick("annual", "a, \"quoted\" value", "two\nlines", "42", "true", "")
		}
		out[i] = p
	}
	return out
}

// store writes the profiles under prefix the way profiled lays them out:
// the hash, bookkeeping keys beside it, a user's links hash, and each of
// its linked ids' link key.
func store(t testing.TB, c redis.UniversalClient, prefix string, ps []person) {
	t.Helper()
	ctx := context.Background()
	const chunk = 500
	for start := 0; start < len(ps); start += chunk {
		pipe := c.Pipeline()
		for _, p := range ps[start:min(start+chunk, len(ps))] {
			key := sink.Key(prefix, p.id)
			pipe.HSet(ctx, key, flat(p.fields)...)
			pipe.HSet(ctx, key+":m", "t:email", "1", "fs", "1")
			pipe.ZAdd(ctx, key+":d", redis.Z{Score: 1, Member: "m-1"})
			if len(p.links) > 0 {
				pipe.HSet(ctx, sink.LinksKey(prefix, p.id), flat(p.links)...)
			}
			for a := range p.links {
				pipe.Set(ctx, sink.LinkKey(prefix, a), p.id, 0)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func flat(m map[string]string) []any {
	out := make([]any, 0, 2*len(m))
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}
