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

// Each calls fn with the profiles of every server, a batch at a time,
// until every server has been scanned, fn returns an error or ctx ends.
// fn is called from Each's goroutine, one batch after another; the slice
// and its profiles are fn's to keep. Batches come in no particular order.
// Memory stays that of a few batches whatever the number of profiles.
//
// Under concurrent writes Each gives SCAN's guarantee: a profile that
// exists for the whole scan is read once (SCAN may return a key twice
// while Redis resizes its table; Each does not remember keys, which would
// cost memory per profile, so such a profile is read twice), a profile
// created or deleted during the scan may or may not be read, and each
// profile is read as it was at one instant (see read), not all profiles
// at the same instant.
func (s *Source) Each(ctx context.Context, fn func([]Profile, Scanned) error) error {
	batch := s.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// One goroutine scans and cuts the ids into chunks of batch; readers
	// read chunks in pipelines of their own, so that round trips and
	// decoding overlap; this goroutine hands each read chunk to fn. At
	// most readers+2 chunks are in flight, whatever the number of profiles.
	chunks := make(chan []string, 1)
	type result struct {
		ids int
		ps  []Profile
		err error
	}
	results := make(chan result, 1)
	scanErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		scanErr <- s.scan(ctx, nodes, batch, func(ids []string) error {
			select {
			case chunks <- ids:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ids := range chunks {
				ps, err := s.read(ctx, ids)
				select {
				case results <- result{len(ids), ps, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	var seen Scanned
	var ferr error
	for r := range results {
		if ferr != nil {
			continue // drain, so the goroutines end
		}
		if ferr = r.err; ferr == nil {
			seen.Keys += int64(r.ids)
			seen.Skipped += int64(r.ids - len(r.ps))
			ferr = fn(r.ps, seen)
		}
		if ferr != nil {
			cancel()
		}
	}
	if err := <-scanErr; ferr == nil && !errors.Is(err, context.Canceled) {
		ferr = err
	}
	if ferr == nil {
		ferr = ctx.Err()
	}
	return ferr
}

// readers is the number of pipelines reading at once: enough to keep
// Redis busy while the client decodes, few enough that memory stays a
// few batches.
const readers = 3

// scanSpan is how many keys each SCAN call looks at per id a chunk
// wants: a profile has two or three bookkeeping keys beside its hash,
// which MATCH drops on the server, so a span of 4 fills a chunk in about
// one call rather than three or four round trips.
const scanSpan = 4

// scan SCANs every node for the prefix's profile keys and calls emit with
// their ids in chunks of batch (the last one smaller). SCAN's COUNT is
// scanSpan times batch: MATCH filters out bookkeeping keys on the server.
func (s *Source) scan(ctx context.Context, nodes []redis.Cmdable, batch int, emit func([]string) error) error {
	match := globEscape(s.Prefix) + "profile:{*}"
	ids := make([]string, 0, batch)
	for _, node := range nodes {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, int64(scanSpan*batch)).Result()
			if err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			for _, k := range keys {
				id, ok := s.profileID(k)
				if !ok {
					continue // bookkeeping, or not a key profiled writes
				}
				ids = append(ids, id)
				if len(ids) == batch {
					if err := emit(ids); err != nil {
						return err
					}
					ids = make([]string, 0, batch)
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	if len(ids) > 0 {
		return emit(ids)
	}
	return nil
}

// read reads the profiles of ids in one pipeline, leaving out those that
// are gone or linked. Each profile hash is read whole by one HGETALL, so
// it is as it was at one instant (each event's effect is one script
// call). Beside it, and just before it on the same connection and slot:
//
//   - for an anonymous id, its link key: an anonymous profile hash beside
//     a link would be history already merged (or being merged) into a
//     user, and is skipped. profiled's claim step renames the hash away in
//     the same script that sets the link, so that state is never written;
//     the check costs one EXISTS and keeps an export from counting a
//     person twice if it ever were (an older version, a hand edit). A link
//     made between the two reads leaves the hash already renamed: skipped
//     too, as the person is in the user's profile.
//   - for a user, its links hash: the anonymous ids listed are those in
//     state 'f' (folded). The fold sets 'f' in the same script that merges
//     the anonymous history into the user's hash, and a state never goes
//     back, so reading the links first means every id listed has its
//     history in the fields read after (a fold between the two reads adds
//     history whose id is not listed yet).
//
// No transaction is needed for that, and none is used: a MULTI over a
// batch would stall Redis for the whole batch, and a Cluster runs a
// transaction in one slot only.
func (s *Source) read(ctx context.Context, ids []string) ([]Profile, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	guards := make([]redis.Cmder, len(ids))
	hashes := make([]*redis.MapStringStringCmd, len(ids))
	pipe := s.Client.Pipeline()
	for i, id := range ids {
		key := sink.Key(s.Prefix, id)
		if _, anon := profile.AnonID(id); anon {
			guards[i] = pipe.Exists(ctx, key+":link")
		} else {
			guards[i] = pipe.HGetAll(ctx, sink.LinksKey(s.Prefix, id))
		}
		hashes[i] = pipe.HGetAll(ctx, key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reading profiles: %w", err)
	}
	out := make([]Profile, 0, len(ids))
	for i, id := range ids {
		fields := hashes[i].Val()
		if len(fields) == 0 {
			continue // deleted, or renamed by a link, since SCAN listed it
		}
		p := Profile{ID: id, Fields: fields}
		switch g := guards[i].(type) {
		case *redis.IntCmd:
			if g.Val() > 0 {
				continue
			}
		case *redis.MapStringStringCmd:
			for a, state := range g.Val() {
				if state == "f" { // 'r' is a link in progress: its history is not in the fields yet
					p.AnonymousIDs = append(p.AnonymousIDs, a)
				}
			}
			sort.Strings(p.AnonymousIDs)
		}
		out = append(out, p)
	}
	return out, nil
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
