// Package sink writes folded profile updates to Redis. Each update is one
// atomic Lua script call (EVALSHA) that applies the merge rules server-side,
// so a reader never sees half an event and any number of writers, in any
// order, converge on the same profile.
package sink

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
)

//go:embed apply.lua
var applySource string

// Config configures the Redis sink.
type Config struct {
	// KeyPrefix is prepended to every key; empty by default. It must not
	// hold a brace (it would become the Cluster hash tag of every key), a
	// SCAN MATCH pattern character (* ? [ ] \), which would break the
	// documented listing of profiles, or a control character.
	KeyPrefix string
	// DedupeWindow is how long a messageId is remembered per profile;
	// 0 turns messageId deduplication off. DefaultConfig gives 24h; a
	// zero Config keeps it off.
	DedupeWindow time.Duration
	// MaxDedupeIDs bounds the messageIds remembered per profile within
	// the window; the oldest are forgotten first. Default 10000.
	MaxDedupeIDs int
	// MaxLinkedIDs bounds the anonymous ids linked to one user; a link
	// beyond it is refused and leaves the anonymous id unlinked. Default 100.
	MaxLinkedIDs int
	// MinReplicas is how many replicas must acknowledge a batch's writes
	// (WAIT) before the batch counts as written and its offsets may be
	// committed; 0 (the default) waits for none. With replicas that take
	// over on failure it is the durability condition of the contract.
	MinReplicas int
}

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	c := Config{DedupeWindow: 24 * time.Hour}
	c.setDefaults()
	return c
}

// setDefaults fills the zero bounds. The zero DedupeWindow is kept: it
// means off.
func (c *Config) setDefaults() {
	if c.MaxDedupeIDs == 0 {
		c.MaxDedupeIDs = 10000
	}
	if c.MaxLinkedIDs == 0 {
		c.MaxLinkedIDs = 100
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if err := validPrefix(c.KeyPrefix); err != nil {
		return fmt.Errorf("key prefix: %w", err)
	}
	switch {
	case c.DedupeWindow < 0:
		return errors.New("dedupe window: must not be negative")
	case c.MaxDedupeIDs < 1:
		return errors.New("max dedupe ids: must be at least 1 (a dedupe window of 0 turns messageId dedupe off)")
	case c.MaxLinkedIDs < 1:
		return errors.New("max linked ids: must be at least 1")
	case c.MinReplicas < 0:
		return errors.New("min replicas: must not be negative")
	}
	return nil
}

// validPrefix refuses what would break the key layout: braces make the
// prefix the Cluster hash tag (every profile in one slot), pattern
// characters break SCAN MATCH <prefix>profile:{*}, and control characters
// or invalid UTF-8 make keys that tools print wrongly.
func validPrefix(p string) error {
	if !utf8.ValidString(p) {
		return errors.New("must be valid UTF-8")
	}
	for _, r := range p {
		switch {
		case r == '{' || r == '}':
			return errors.New("must not contain { or }: they would make the prefix the Redis Cluster hash tag of every key, all profiles in one slot")
		case strings.ContainsRune(`*?[]\`, r):
			return errors.New(`must not contain * ? [ ] or \: they are pattern characters of SCAN MATCH, which lists profiles by the prefix`)
		case unicode.IsControl(r):
			return errors.New("must not contain control characters")
		}
	}
	return nil
}

// Sink applies updates to Redis.
type Sink struct {
	client redis.UniversalClient
	cfg    Config
	script *redis.Script
	now    func() time.Time
	m      *metrics
}

// New returns a Sink writing through client. Its metrics are registered on
// reg (nil: not registered).
func New(client redis.UniversalClient, cfg Config, reg prometheus.Registerer) *Sink {
	return &Sink{client: client, cfg: cfg, script: redis.NewScript(applySource), now: time.Now, m: newMetrics(reg)}
}

// Result sums what one Apply did.
type Result struct {
	Created        int
	Launches       int
	Visits         int
	DupMessageID   int
	DupRedelivered int
}

// Key returns the Redis key of a profile's hash.
func Key(prefix, id string) string { return prefix + "profile:{" + id + "}" }

func (s *Sink) keys(id string) []string {
	k := Key(s.cfg.KeyPrefix, id)
	return []string{k, k + ":m", k + ":d"}
}

// Ping checks that Redis answers.
func (s *Sink) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }

// Load loads the script into every server (all masters of a cluster).
func (s *Sink) Load(ctx context.Context) error {
	return s.script.Load(ctx, s.client).Err()
}

// Apply writes every update (see ApplyCounted) and records what Redis did
// in the sink's metrics. It satisfies the consumer's Store.
func (s *Sink) Apply(ctx context.Context, updates []*profile.Update) error {
	if len(updates) == 0 {
		return nil
	}
	start := time.Now()
	res, err := s.ApplyCounted(ctx, updates)
	if err != nil {
		s.m.errors.Inc()
		return err
	}
	s.m.latency.Observe(time.Since(start).Seconds())
	s.m.created.Add(float64(res.Created))
	s.m.duplicates.WithLabelValues("message_id").Add(float64(res.DupMessageID))
	s.m.duplicates.WithLabelValues("redelivered").Add(float64(res.DupRedelivered))
	return nil
}

// ApplyCounted writes every update in one pipeline, one script call per
// profile, and returns what the scripts counted. It returns only when every
// update was applied, or with the first error; the caller retries the whole
// slice, which is safe: the script ignores what it applied before (offset
// watermarks) and field merges are idempotent.
func (s *Sink) ApplyCounted(ctx context.Context, updates []*profile.Update) (Result, error) {
	var res Result
	if len(updates) == 0 {
		return res, nil
	}
	now := s.now()
	pending := make([]int, len(updates))
	args := make([][]any, len(updates))
	for i, u := range updates {
		pending[i] = i
		args[i] = s.argv(u, now)
	}
	for attempt := 0; ; attempt++ {
		cmds := make([]*redis.Cmd, len(pending))
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, idx := range pending {
				cmds[j] = s.script.EvalSha(ctx, p, s.keys(updates[idx].ProfileID), args[idx]...)
			}
			return nil
		})
		if err != nil && !isNoScript(err) {
			return res, err
		}
		var retry []int
		for j, cmd := range cmds {
			if cerr := cmd.Err(); cerr != nil {
				if isNoScript(cerr) {
					retry = append(retry, pending[j])
					continue
				}
				return res, fmt.Errorf("profile script: %w", cerr)
			}
			vals, err := cmd.Int64Slice()
			if err != nil || len(vals) != 5 {
				return res, fmt.Errorf("profile script: unexpected reply %v", cmd.Val())
			}
			res.Created += int(vals[0])
			res.Launches += int(vals[1])
			res.Visits += int(vals[2])
			res.DupMessageID += int(vals[3])
			res.DupRedelivered += int(vals[4])
		}
		if len(retry) == 0 {
			return res, nil
		}
		// NOSCRIPT: the server restarted or failed over and lost its
		// script cache; nothing of those calls ran, so load and rerun them.
		if attempt >= 2 {
			return res, errors.New("profile script: NOSCRIPT persists after reloading")
		}
		s.m.reloads.Inc()
		if err := s.Load(ctx); err != nil {
			return res, fmt.Errorf("load script: %w", err)
		}
		pending = retry
	}
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// argv builds the script arguments of one update (see apply.lua).
func (s *Sink) argv(u *profile.Update, now time.Time) []any {
	names := u.FieldNames()
	args := make([]any, 0, 12+3*len(names)+4*len(u.Counts))
	nowMs := now.UnixMilli()
	args = append(args,
		strconv.FormatInt(nowMs, 10), profile.FormatTime(nowMs),
		strconv.FormatInt(s.cfg.DedupeWindow.Milliseconds(), 10), strconv.Itoa(profile.MaxTraits),
		strconv.Itoa(len(names)))
	for _, n := range names {
		f := u.Fields[n]
		args = append(args, n, f.Value, strconv.FormatInt(f.Time, 10))
	}
	if u.First.IsZero() {
		args = append(args, "0", "", "", "0", "", "")
	} else {
		args = append(args,
			strconv.FormatInt(u.First.Time, 10), profile.FormatTime(u.First.Time), u.First.Channel,
			strconv.FormatInt(u.Last.Time, 10), profile.FormatTime(u.Last.Time), u.Last.Channel)
	}
	counts := u.Counts
	sort.SliceStable(counts, func(i, j int) bool {
		if counts[i].Source != counts[j].Source {
			return counts[i].Source < counts[j].Source
		}
		return counts[i].Offset < counts[j].Offset
	})
	var sources []string
	for i, c := range counts {
		if i == 0 || c.Source != counts[i-1].Source {
			sources = append(sources, c.Source)
		}
	}
	args = append(args, strconv.Itoa(len(sources)))
	for _, src := range sources {
		args = append(args, src)
	}
	args = append(args, strconv.Itoa(len(counts)))
	si := 0
	for i, c := range counts {
		if i > 0 && c.Source != counts[i-1].Source {
			si++
		}
		ch := "w"
		if c.Kind == profile.KindAppLaunch {
			ch = "a"
		}
		args = append(args, ch, strconv.Itoa(si+1), strconv.FormatInt(c.Offset, 10), c.MessageID)
	}
	return args
}
