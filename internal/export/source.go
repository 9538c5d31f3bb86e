package export

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// DefaultBatch is the number of keys asked of each SCAN call and read in
// one pipeline: large enough that round trips cost little, small enough
// that a batch's profiles take a few hundred kilobytes.
const DefaultBatch = 1000

// readSource reads one profile atomically: its hash and, for a user, its
// links hash, in one script call, as sink.Read reads them in one
// transaction, so the anonymous ids listed are those whose history is in
// the fields. For an anonymous id it checks the link key in the same call:
// an anonymous profile hash beside a link would be history already merged
// (or being merged) into a user, and is skipped. profiled's claim step
// renames the hash away in the same script that sets the link, so that
// state is never written; the check costs one EXISTS and keeps an export
// from counting a person twice if it ever were (an older version, a hand
// edit). The script runs by EVALSHA, which works on Redis 6.2 and later
// and on a Cluster (both keys are in the profile's slot).
const readSource = `
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return {} end
if ARGV[1] == 'a' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
  return {h}
end
return {h, redis.call('HGETALL', KEYS[2])}
`

var readScript = redis.NewScript(readSource)

// Source reads the profiles under one key prefix of a Redis.
type Source struct {
	// Client is a standalone, Sentinel or Cluster client.
	Client redis.UniversalClient
	// Prefix is the key prefix (PROFILED_REDIS_KEY_PREFIX).
	Prefix string
	// Batch is the SCAN count and pipeline size; DefaultBatch when 0.
	Batch int
}

// Scanned is what Each has seen so far.
type Scanned struct {
	// Keys are the profile keys SCAN returned (a key SCAN returns twice,
	// which it may while the keyspace is rehashed, counts twice).
	Keys int64
	// Skipped are profile keys with no profile behind them by the time
	// they were read: deleted, linked to a user, or not a profile id.
	Skipped int64
}

// nodes returns the servers to SCAN: every master of a Cluster, else the
// client itself.
func (s *Source) nodes(ctx context.Context) ([]redis.Cmdable, error) {
	cc, ok := s.Client.(*redis.ClusterClient)
	if !ok {
		return []redis.Cmdable{s.Client}, nil
	}
	var mu sync.Mutex
	var out []redis.Cmdable
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, c)
		return nil
	})
	return out, err
}

// estimateSample is the number of random keys Estimate draws from each
// server.
const estimateSample = 200

// Estimate returns about how many profiles the servers hold, for
// progress: each server's key count times the share of profile keys of
// the prefix among a sample of its keys (a profile has bookkeeping keys
// beside its hash, and other prefixes may share the database).
func (s *Source) Estimate(ctx context.Context) (int64, error) {
	nodes, err := s.nodes(ctx)
	if err != nil {
		return 0, err
	}
	var total float64
	for _, c := range nodes {
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			return 0, err
		}
		if n == 0 {
			continue
		}
		pipe := c.Pipeline()
		keys := make([]*redis.StringCmd, estimateSample)
		for i := range keys {
			keys[i] = pipe.RandomKey(ctx)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return 0, err
		}
		hits := 0
		for _, k := range keys {
			if _, ok := s.profileID(k.Val()); ok {
				hits++
			}
		}
		total += float64(n) * float64(hits) / estimateSample
	}
	return int64(total + 0.5), nil
}

// profileID returns the profile id of key, and false for a key that is
// not a profile hash of the prefix (bookkeeping, other data).
func (s *Source) profileID(key string) (string, bool) {
	id, ok := strings.CutPrefix(key, s.Prefix+"profile:{")
	id, closed := strings.CutSuffix(id, "}")
	return id, ok && closed && profile.ValidateProfileID(id) == nil
}

// Each calls fn with the profiles of each SCAN page, in SCAN order, until
// every server has been scanned, fn returns an error or ctx ends. The
// slice and its profiles are fn's to keep. Memory stays that of one page
// whatever the number of profiles.
//
// Under concurrent writes Each gives SCAN's guarantee: a profile that
// exists for the whole scan is read once (SCAN may return a key twice
// while Redis resizes its table; Each does not remember keys, which would
// cost memory per profile, so such a profile is read twice), a profile
// created or deleted during the scan may or may not be read, and each
// profile is read atomically, as it was at one instant, not all profiles
// at the same instant.
func (s *Source) Each(ctx context.Context, fn func([]Profile, Scanned) error) error {
	batch := s.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	if err := readScript.Load(ctx, s.Client).Err(); err != nil {
		return fmt.Errorf("loading the read script: %w", err)
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return err
	}
	match := globEscape(s.Prefix) + "profile:{*}"
	var seen Scanned
	for _, node := range nodes {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, int64(batch)).Result()
			if err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			ids := make([]string, 0, len(keys))
			for _, k := range keys {
				id, ok := s.profileID(k)
				if !ok {
					continue // bookkeeping, or not a key profiled writes
				}
				ids = append(ids, id)
			}
			seen.Keys += int64(len(ids))
			profiles, err := s.read(ctx, ids)
			if err != nil {
				return err
			}
			seen.Skipped += int64(len(ids) - len(profiles))
			if err := fn(profiles, seen); err != nil {
				return err
			}
			cursor = next
			if cursor == 0 {
				break
			}
		}
	}
	return nil
}

// read reads the profiles of ids in one pipeline, leaving out those that
// are gone or linked. A server that answers NOSCRIPT (restarted or failed
// over since the script was loaded) gets the script again and the whole
// pipeline once more: the reads change nothing, so repeating them is safe.
func (s *Source) read(ctx context.Context, ids []string) ([]Profile, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		cmds := make([]*redis.Cmd, len(ids))
		pipe := s.Client.Pipeline()
		for i, id := range ids {
			key := sink.Key(s.Prefix, id)
			if _, anon := profile.AnonID(id); anon {
				cmds[i] = readScript.EvalSha(ctx, pipe, []string{key, key + ":link"}, "a")
			} else {
				cmds[i] = readScript.EvalSha(ctx, pipe, []string{key, sink.LinksKey(s.Prefix, id)}, "u")
			}
		}
		_, err := pipe.Exec(ctx)
		if err != nil && isNoScript(err) && attempt == 0 {
			if err := readScript.Load(ctx, s.Client).Err(); err != nil {
				return nil, fmt.Errorf("reloading the read script: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading profiles: %w", err)
		}
		out := make([]Profile, 0, len(ids))
		for i, c := range cmds {
			p, ok, err := parseRead(ids[i], c.Val())
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, p)
			}
		}
		return out, nil
	}
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// parseRead turns the script's reply into a profile; ok is false for an
// empty reply (no profile, or a linked anonymous id).
func parseRead(id string, v any) (Profile, bool, error) {
	parts, _ := v.([]any)
	if len(parts) == 0 {
		return Profile{}, false, nil
	}
	fields, err := pairs(parts[0])
	if err != nil {
		return Profile{}, false, fmt.Errorf("profile %q: %w", id, err)
	}
	p := Profile{ID: id, Fields: fields}
	if len(parts) > 1 {
		links, err := pairs(parts[1])
		if err != nil {
			return Profile{}, false, fmt.Errorf("links of %q: %w", id, err)
		}
		for a, state := range links {
			if state == "f" { // 'r' is a link in progress: its history is not in the fields yet
				p.AnonymousIDs = append(p.AnonymousIDs, a)
			}
		}
		sort.Strings(p.AnonymousIDs)
	}
	return p, true, nil
}

// pairs reads a flat HGETALL reply (field, value, ...).
func pairs(v any) (map[string]string, error) {
	flat, ok := v.([]any)
	if !ok || len(flat)%2 != 0 {
		return nil, errors.New("unexpected reply from the read script")
	}
	m := make(map[string]string, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		k, ok1 := flat[i].(string)
		val, ok2 := flat[i+1].(string)
		if !ok1 || !ok2 {
			return nil, errors.New("unexpected reply from the read script")
		}
		m[k] = val
	}
	return m, nil
}

// globEscape escapes the characters that SCAN MATCH reads as a pattern,
// so that a prefix matches itself only.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
