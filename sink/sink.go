// Package sink writes folded profile updates to Redis. Each update is one
// atomic Lua script call (EVALSHA) that applies the merge rules server-side,
// so a reader never sees half an event and any number of writers, in any
// order, converge on the same profile. Identity links (an anonymous id
// joining its user, contract section 2a) are a protocol of single-slot
// scripts; see link.go.
package sink

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/profile"
)

var (
	//go:embed apply.lua
	applySource string
	//go:embed claim.lua
	claimSource string
	//go:embed finish.lua
	finishSource string
	//go:embed unreserve.lua
	unreserveSource string
)

// limitsLine is the line of apply.lua that New writes the limits into.
const limitsLine = "local window, maxTraits, maxDedupe, maxLinks = 86400000, 256, 10000, 100 -- limits\n"

// applyScript returns apply.lua with cfg's limits written into it: the
// script's text, and so its SHA1, differ with them.
func applyScript(cfg Config) string {
	if strings.Count(applySource, limitsLine) != 1 {
		panic("sink: apply.lua's limits line changed")
	}
	return strings.Replace(applySource, limitsLine, fmt.Sprintf("local window, maxTraits, maxDedupe, maxLinks = %d, %d, %d, %d -- limits\n",
		cfg.DedupeWindow.Milliseconds(), profile.MaxTraits, cfg.MaxDedupeIDs, cfg.MaxLinkedIDs), 1)
}

// Defaults of Config.
const (
	DefaultMaxLinkedIDs = 100
	DefaultMaxDedupeIDs = 10000
	DefaultLinkCache    = 100000
)

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
	// ReplicaTimeout bounds each WAIT; a WAIT that times out fails the
	// batch, which the caller retries. Default 1s.
	ReplicaTimeout time.Duration
	// LinkCache is how many links the process remembers (a link never
	// changes once made); default 100,000.
	LinkCache int
	// Now is the sink's clock, read once per batch (created_at,
	// updated_at, the dedupe window); nil: time.Now. The benchmark's
	// instruction count sets one that advances a millisecond a batch, so
	// that two runs make the same calls.
	Now func() time.Time
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
		c.MaxDedupeIDs = DefaultMaxDedupeIDs
	}
	if c.MaxLinkedIDs == 0 {
		c.MaxLinkedIDs = DefaultMaxLinkedIDs
	}
	if c.LinkCache == 0 {
		c.LinkCache = DefaultLinkCache
	}
	if c.ReplicaTimeout == 0 {
		c.ReplicaTimeout = time.Second
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
	client    redis.UniversalClient
	cfg       Config
	apply     *redis.Script
	applyHash any // apply's SHA1 as a command argument, boxed once
	claim     *redis.Script
	finish    *redis.Script
	unreserve *redis.Script
	links     *linkCache
	now       func() time.Time
	m         *metrics
	// step, when set, runs after each step of a batch (1 apply, 2 claim,
	// 3 fold, 4 finish); an error it returns ends the batch there, as a
	// crash would. Tests use it.
	step func(n int) error
	// hdr holds the last shared script arguments (see headerAt)
	hdr atomic.Pointer[header]
	// marks holds the watermark field of each log seen ("o:<source>")
	marks markFields
	// oneNode: every key is on one Redis node (a single server or a
	// Sentinel-managed master, not a Cluster), so a user's update may link
	// an anonymous id with no history in one step (apply.lua, state 'n')
	oneNode bool
}

// markFields makes each log's watermark field once: a process reads a
// handful of logs (its partitions) millions of times.
type markFields struct{ m sync.Map }

func (f *markFields) field(src string) any {
	if v, ok := f.m.Load(src); ok {
		return v
	}
	v, _ := f.m.LoadOrStore(src, "o:"+src)
	return v
}

func (s *Sink) after(n int) error {
	if s.step == nil {
		return nil
	}
	return s.step(n)
}

// New returns a Sink writing through client. Its metrics are registered on
// reg (nil: not registered).
func New(client redis.UniversalClient, cfg Config, reg prometheus.Registerer) *Sink {
	cfg.setDefaults()
	apply := redis.NewScript(applyScript(cfg))
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Sink{
		client:    client,
		cfg:       cfg,
		apply:     apply,
		applyHash: apply.Hash(),
		claim:     redis.NewScript(claimSource),
		finish:    redis.NewScript(finishSource),
		unreserve: redis.NewScript(unreserveSource),
		links:     newLinkCache(cfg.LinkCache),
		now:       now,
		m:         newMetrics(reg),
		oneNode:   !isCluster(client),
	}
}

// Result sums what one Apply did.
type Result struct {
	Created        int
	Launches       int
	Visits         int
	DupMessageID   int
	DupRedelivered int
	Forgotten      int // messageIds forgotten by the per-profile cap
	Evicted        int // custom traits evicted by the per-profile limit
	Routed         int // events of a linked anonymous id applied to its user
	Links          map[string]int
}

func (r *Result) link(result string, n int) {
	if r.Links == nil {
		r.Links = map[string]int{}
	}
	r.Links[result] += n
}

// Link results, the values of profiled_identity_links_total's label.
const (
	LinkLinked   = "linked"
	LinkAlready  = "already"
	LinkConflict = "conflict"
	LinkLimit    = "limit"
)

// Key returns the Redis key of a profile's hash.
func Key(prefix, id string) string { return prefix + "profile:{" + id + "}" }

// LinkKey returns the key that holds the user an anonymous id is linked
// to, beside the anonymous profile's key (in its slot).
func LinkKey(prefix, anonID string) string { return Key(prefix, profile.AnonPrefix+anonID) + ":link" }

// LinksKey returns the key of the hash of the anonymous ids linked to a
// user, beside the user's key (in its slot).
func LinksKey(prefix, userID string) string { return Key(prefix, userID) + ":links" }

// Ping checks that Redis answers.
func (s *Sink) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }

// scripts are every script the sink runs.
func (s *Sink) scripts() []*redis.Script {
	return []*redis.Script{s.apply, s.claim, s.finish, s.unreserve}
}

// Load loads the scripts into every server (all masters of a cluster).
func (s *Sink) Load(ctx context.Context) error {
	for _, sc := range s.scripts() {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			return err
		}
	}
	return nil
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
	s.m.forgotten.Add(float64(res.Forgotten))
	s.m.evicted.Add(float64(res.Evicted))
	s.m.routed.Add(float64(res.Routed))
	for r, n := range res.Links {
		s.m.links.WithLabelValues(r).Add(float64(n))
	}
	return nil
}

// call is one script call of a pipeline.
type call struct {
	script *redis.Script
	keys   []string
	args   []any
	owner  string // the user of a routed update
	// launches and visits are what an apply.lua call sends: its one-integer
	// reply means every one of them counted
	launches, visits int64
	// build, when set, makes the whole EVALSHA command (keys and args
	// then in it) when the call is sent (see runAll): built in one slice,
	// so that go-redis neither copies the arguments into a command of its
	// own nor boxes the keys again; its slices come from buf unless buf
	// is nil
	build func(buf *argBuf) []any
}

// cmd returns c as one EVALSHA command, its arguments in buf's slices
// (buf nil: slices of their own).
func (c call) cmd(ctx context.Context, buf *argBuf) *redis.Cmd {
	var full []any
	if c.build != nil {
		full = c.build(buf)
	} else {
		full = make([]any, 3, 3+len(c.keys)+len(c.args))
		full[0], full[1], full[2] = "evalsha", c.script.Hash(), len(c.keys)
		for _, k := range c.keys {
			full = append(full, k)
		}
		full = append(full, c.args...)
	}
	cmd := redis.NewCmd(ctx, full...)
	cmd.SetFirstKeyPos(3)
	return cmd
}

// applyCall is the apply.lua call of update u (see argv) on keys.
func (s *Sink) applyCall(keys []string, u *profile.Update, mode byte, anon string, links []string, f *fold, now time.Time) call {
	c := call{script: s.apply, keys: keys, build: func(buf *argBuf) []any { return s.argv(buf, keys, u, mode, anon, links, f, now) }}
	// every count, messageId repeats included: the script answers with
	// the bare integer only when it counted none as a duplicate
	for _, n := range u.Counts {
		if n.Kind == profile.KindAppLaunch {
			c.launches++
		} else {
			c.visits++
		}
	}
	return c
}

// runChunk is how many calls runAll sends in one pipeline: a batch's
// calls are built as they are sent, so only one chunk's arguments are in
// memory at a time (a batch of 20,000 records, the default bound, makes
// about 4,000 calls of some 80 arguments each).
const runChunk = 512

// runAll runs calls in order, in pipelines of runChunk, and returns their
// replies in order. A server that answers NOSCRIPT (restarted or failed
// over: its script cache is empty) gets the scripts loaded, and only the
// calls that did not run are sent again.
func (s *Sink) runAll(ctx context.Context, calls []call) ([]any, error) {
	if s.cfg.MinReplicas > 0 {
		return s.runWaited(ctx, calls)
	}
	buf := argBufs.Get().(*argBuf)
	defer argBufs.Put(buf)
	out := make([]any, len(calls))
	pending := make([]int, len(calls))
	for i := range calls {
		pending[i] = i
	}
	for attempt := 0; ; attempt++ {
		var retry []int
		for lo := 0; lo < len(pending); lo += runChunk {
			chunk := pending[lo:min(lo+runChunk, len(pending))]
			cmds := make([]*redis.Cmd, len(chunk))
			_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for j, idx := range chunk {
					cmds[j] = calls[idx].cmd(ctx, buf)
					_ = p.Process(ctx, cmds[j])
				}
				return nil
			})
			// the chunk is sent and answered: its arguments are done with
			buf.reset()
			if err != nil && !isNoScript(err) {
				return nil, err
			}
			for j, cmd := range cmds {
				if cerr := cmd.Err(); cerr != nil {
					if isNoScript(cerr) {
						retry = append(retry, chunk[j])
						continue
					}
					return nil, fmt.Errorf("profile script: %w", cerr)
				}
				out[chunk[j]] = cmd.Val()
			}
		}
		if len(retry) == 0 {
			return out, nil
		}
		if attempt >= 2 {
			return nil, errors.New("profile script: NOSCRIPT persists after reloading")
		}
		s.m.reloads.Inc()
		if err := s.Load(ctx); err != nil {
			return nil, fmt.Errorf("load scripts: %w", err)
		}
		pending = retry
	}
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// applyReply is apply.lua's answer.
type applyReply struct {
	status                                   int64
	created, launches, visits, dupMsg, dupRe int64
	forgotten, evicted                       int64
	owner                                    string
	links                                    [][2]string // (anonymous id, state)
}

// Statuses of apply.lua.
const (
	statusApplied  = 0
	statusLinked   = 1 // mode 'a': the anonymous id is linked; route it
	statusNeedFold = 2 // mode 'r': the id's history is not folded in yet
	statusAlready  = 3 // mode 'f': folded before
)

func parseApply(v any, c call) (applyReply, error) {
	var r applyReply
	if created, ok := v.(int64); ok {
		// the common case: applied, every launch and visit of c counted
		r.created, r.launches, r.visits = created, c.launches, c.visits
		return r, nil
	}
	vals, ok := v.([]any)
	if !ok || len(vals) < 9 || len(vals)%2 != 1 {
		return r, fmt.Errorf("profile script: unexpected reply %v", v)
	}
	nums := [...]*int64{&r.status, &r.created, &r.launches, &r.visits, &r.dupMsg, &r.dupRe, &r.forgotten, &r.evicted}
	for i, p := range nums {
		n, ok := vals[i].(int64)
		if !ok {
			return r, fmt.Errorf("profile script: unexpected reply %v", v)
		}
		*p = n
	}
	r.owner, _ = vals[8].(string)
	for i := 9; i+1 < len(vals); i += 2 {
		a, _ := vals[i].(string)
		st, _ := vals[i+1].(string)
		r.links = append(r.links, [2]string{a, st})
	}
	return r, nil
}

func (r *Result) add(a applyReply) {
	r.Created += int(a.created)
	r.Launches += int(a.launches)
	r.Visits += int(a.visits)
	r.DupMessageID += int(a.dupMsg)
	r.DupRedelivered += int(a.dupRe)
	r.Forgotten += int(a.forgotten)
	r.Evicted += int(a.evicted)
}

// ApplyCounted writes every update and returns what the scripts counted.
// It returns only when every update was applied, or with the first error;
// the caller retries the whole slice, which is safe: the scripts ignore
// what they applied before (offset watermarks, the link states) and field
// merges are idempotent.
//
// One pipeline applies every update, one script call per profile. Only a
// batch that links an anonymous id, or meets a linked one the process did
// not know, pays more: see link.go.
func (s *Sink) ApplyCounted(ctx context.Context, updates []*profile.Update) (Result, error) {
	var res Result
	if len(updates) == 0 {
		return res, nil
	}
	now := s.now()
	calls := make([]call, 0, len(updates))
	// the anonymous ids' own updates go first, the users' after them (each
	// in the batch's order): an anonymous id's history in the batch is in
	// its profile before a user's update links it, so which of its events
	// count as routed does not depend on the order of the batch
	order := make([]*profile.Update, 0, len(updates))
	for _, u := range updates {
		anon, ok := profile.AnonID(u.ProfileID)
		if !ok {
			continue
		}
		order = append(order, u)
		if owner, ok := s.links.get(anon); ok {
			calls = append(calls, s.routedCall(u, anon, owner, now))
			res.Routed += u.Events
			continue
		}
		calls = append(calls, s.updateCall(u, 'a', "", nil, now))
	}
	for _, u := range updates {
		if _, ok := profile.AnonID(u.ProfileID); !ok {
			order = append(order, u)
			calls = append(calls, s.updateCall(u, 'u', "", s.candidates(u, &res), now))
		}
	}
	replies, err := s.runAll(ctx, calls)
	if err == nil {
		err = s.after(1)
	}
	if err != nil {
		return res, err
	}
	var lk linking
	for i, v := range replies {
		r, err := parseApply(v, calls[i])
		if err != nil {
			return res, err
		}
		res.add(r)
		u := order[i]
		switch r.status {
		case statusLinked:
			anon, _ := profile.AnonID(u.ProfileID)
			lk.route(anon, r.owner, u)
		case statusNeedFold: // a cached link whose fold Redis lost
			anon, _ := profile.AnonID(u.ProfileID)
			res.Routed -= u.Events
			lk.route(anon, calls[i].owner, u)
		}
		for _, l := range r.links {
			switch l[1] {
			case "f":
				s.links.put(l[0], u.ProfileID)
				res.link(LinkAlready, 1)
			case "n":
				s.links.put(l[0], u.ProfileID)
				res.link(LinkLinked, 1)
			case "r":
				lk.claim(l[0], u.ProfileID)
			case "l":
				res.link(LinkLimit, 1)
			}
		}
	}
	if lk.empty() {
		return res, nil
	}
	return res, s.link(ctx, &lk, &res, now)
}

// candidates returns the anonymous ids of u's links that Redis must see:
// those the process does not know to be linked already. A known link to u
// is counted as already made, one to another user as a conflict.
func (s *Sink) candidates(u *profile.Update, res *Result) []string {
	if len(u.Links) == 0 {
		return nil
	}
	var out []string
	for _, a := range u.Links {
		owner, ok := s.links.get(a)
		switch {
		case !ok:
			out = append(out, a)
		case owner == u.ProfileID:
			res.link(LinkAlready, 1)
		default:
			res.link(LinkConflict, 1)
		}
	}
	return out
}

func (s *Sink) profileKeys(id string, linkKey string) []string {
	k := Key(s.cfg.KeyPrefix, id)
	return []string{k, k + ":m", k + ":d", linkKey}
}

// updateCall is the apply.lua call of an update: its own ('u', 'a').
func (s *Sink) updateCall(u *profile.Update, mode byte, anon string, links []string, now time.Time) call {
	var lk string
	if mode == 'a' {
		a, _ := profile.AnonID(u.ProfileID)
		lk = LinkKey(s.cfg.KeyPrefix, a)
	} else {
		lk = LinksKey(s.cfg.KeyPrefix, u.ProfileID)
	}
	keys := s.profileKeys(u.ProfileID, lk)
	if mode == 'u' && s.oneNode && len(links) > 0 {
		// the keys of the one-step link (apply.lua, state 'n')
		for _, a := range links {
			k := Key(s.cfg.KeyPrefix, profile.AnonPrefix+a)
			keys = append(keys, k+":link", k, k+":m", k+":d", k+":snap")
		}
		anon = u.ProfileID
	}
	return s.applyCall(keys, u, mode, anon, links, nil, now)
}

// isCluster reports whether client spreads keys over Redis Cluster slots.
func isCluster(client redis.UniversalClient) bool {
	_, ok := client.(*redis.ClusterClient)
	return ok
}

// routedCall applies anonymous id anon's update to its user owner.
func (s *Sink) routedCall(u *profile.Update, anon, owner string, now time.Time) call {
	c := s.applyCall(s.profileKeys(owner, LinksKey(s.cfg.KeyPrefix, owner)), asUser(u, owner), 'r', anon, nil, nil, now)
	c.owner = owner
	return c
}

// asUser returns u as if its events had carried user id owner: with the
// customer_id they would have set, at the latest time of u's fields. The
// caller's update is left as it is (a retried batch reuses it).
func asUser(u *profile.Update, owner string) *profile.Update {
	var latest int64
	found := false
	for _, f := range u.Fields {
		if !found || f.Time > latest {
			latest, found = f.Time, true
		}
	}
	if !u.Last.IsZero() && (!found || u.Last.Time > latest) {
		latest, found = u.Last.Time, true
	}
	if !found {
		return u
	}
	c := *u
	c.Fields = make(map[string]profile.Stamped, len(u.Fields)+1)
	for k, v := range u.Fields {
		c.Fields[k] = v
	}
	c.Fields[profile.FieldCustomerID] = profile.Stamped{Value: owner, Time: latest}
	return &c
}

// header is the part of apply.lua's arguments that every call of one
// moment shares: the clock, formatted and boxed once.
type header struct {
	ms   int64
	args [2]any
	// the dedupe scores of a launch and of a visit applied at ms
	launch, visit any
}

// headerAt returns the shared arguments at now, reusing the last ones
// while the millisecond is the same (a batch's calls share one now).
func (s *Sink) headerAt(now time.Time) *header {
	ms := now.UnixMilli()
	if h := s.hdr.Load(); h != nil && h.ms == ms {
		return h
	}
	h := &header{ms: ms, args: [2]any{strconv.FormatInt(ms, 10), profile.FormatTime(ms)}, launch: strconv.FormatInt(-2*ms-1, 10), visit: strconv.FormatInt(-2*ms, 10)}
	s.hdr.Store(h)
	return h
}

// smallArgs are the small counts and indexes of the arguments, boxed once.
var smallArgs = func() (a [256]any) {
	for i := range a {
		a[i] = strconv.Itoa(i)
	}
	return a
}()

// intArg is n as a script argument.
func intArg(n int) any {
	if n >= 0 && n < len(smallArgs) {
		return smallArgs[n]
	}
	return strconv.Itoa(n)
}

// modeArgs are the script's modes, boxed once.
var modeArgs = map[byte]any{'u': "u", 'a': "a", 'r': "r", 'f': "f"}

// argv builds the EVALSHA command of one update on keys (see apply.lua for
// its arguments): every field name the script reads or writes, and the
// counts summed up where the common case needs no more.
func (s *Sink) argv(buf *argBuf, keys []string, u *profile.Update, mode byte, anon string, links []string, f *fold, now time.Time) []any {
	names, ntr := fieldOrder(u)
	dedupe := s.cfg.DedupeWindow > 0
	cs := summarize(u.Counts, dedupe)
	counts, nsrc, fast, launches, visits, withID := cs.counts, len(cs.first), cs.fast, cs.launches, cs.visits, cs.withID
	args := buf.anys(3+len(keys), 3+len(keys)+32+5*len(names)+4*len(counts)+3*nsrc+len(links))
	args[0], args[1], args[2] = "evalsha", s.applyHash, intArg(len(keys))
	for i, k := range keys {
		args[3+i] = k
	}
	h := s.headerAt(now)
	args = append(args, h.args[:]...)
	// the call's strings and numbers, boxed as pointers into two slices:
	// go-redis writes a *string or *int64 as it does the value, and a
	// pointer in an interface needs no allocation of its own
	a := argArena{strs: buf.strs(6 + 2*len(names) + len(counts) + len(links)), nums: buf.nums(2 + 2*nsrc + len(names))}
	args = append(args, modeArgs[mode], a.str(anon), nil) // the sizes, set at the end
	zi := len(args) - 1
	var z sizes
	z.set(0, len(names))
	z.set(1, ntr)
	z.set(2, nsrc)
	z.set(3, len(counts))
	if fast {
		z.set(4, 1)
	}
	z.set(5, launches)
	z.set(6, visits)
	if u.First.IsZero() {
		args = append(args, "0", "", "", "0", "", "")
	} else {
		args = append(args,
			a.num(u.First.Time), a.str(profile.FormatTime(u.First.Time)), a.str(u.First.Channel),
			a.num(u.Last.Time), a.str(profile.FormatTime(u.Last.Time)), a.str(u.Last.Channel))
	}
	// each source's lowest and highest offset
	for j, i := range cs.first {
		lo := a.num(counts[i].Offset)
		hi := lo
		if l := cs.last(j); l != i {
			hi = a.num(counts[l].Offset)
		}
		args = append(args, lo, hi)
	}
	// the counts, all of them in one
	args = append(args, a.str(packCounts(cs)))
	if dedupe {
		// each count's messageId, boxed once for the two places it goes
		// (a repeat's is left out: the script reads only its offset)
		z.set(7, len(counts))
		m0 := len(args)
		for i, c := range counts {
			if cs.isRepeat(i) {
				args = append(args, "")
			} else {
				args = append(args, a.str(c.MessageID))
			}
		}
		z.set(8, withID)
		for i, c := range counts {
			if c.MessageID == "" || cs.isRepeat(i) {
				continue
			}
			if c.Kind == profile.KindAppLaunch {
				args = append(args, h.launch, args[m0+i])
			} else {
				args = append(args, h.visit, args[m0+i])
			}
		}
	}
	z.set(9, len(links))
	for _, l := range links {
		args = append(args, a.str(l))
	}
	// the meta fields to read: each field's time, each source's watermark
	z.set(10, len(names)+nsrc)
	for _, n := range names {
		args = append(args, timeField(n))
	}
	for _, i := range cs.first {
		if mode == 'r' {
			args = append(args, "r:"+counts[i].Source+"|"+anon)
		} else {
			args = append(args, s.marks.field(counts[i].Source))
		}
	}
	// the profile fields to read, then each field's value and time
	npk := len(args)
	for _, n := range names {
		if n == profile.FieldCoordinates {
			args = append(args, profile.FieldLatitude, profile.FieldLongitude)
		} else if b, ok := boxedNames[n]; ok {
			args = append(args, b)
		} else {
			args = append(args, n)
		}
	}
	z.set(11, len(args)-npk)
	args[zi] = a.str(string(z[:]))
	// the fields of one event share its time: box each time once
	var lastT int64
	var lastBox any
	for _, n := range names {
		f := u.Fields[n]
		if lastBox == nil || f.Time != lastT {
			lastT, lastBox = f.Time, a.num(f.Time)
		}
		args = append(args, a.str(f.Value), lastBox)
	}
	if f != nil {
		args = append(args, strconv.FormatInt(f.launches, 10), strconv.FormatInt(f.visits, 10), strconv.Itoa(len(f.mids)/2))
		args = append(args, f.mids...)
		args = append(args, strconv.Itoa(len(f.marks)/2))
		args = append(args, f.marks...)
	}
	return args
}

// sizes is apply.lua's sizes argument: twelve numbers of three bytes each,
// big-endian.
type sizes [36]byte

// set puts n as the i-th number. An update is far below 2^24 of anything
// (the consumer bounds an update's counts at maxCountsPerUpdate, a
// profile's custom traits at 256).
func (z *sizes) set(i, n int) {
	if n < 0 || n >= 1<<24 {
		panic(fmt.Sprintf("sink: apply.lua size %d out of range: %d", i, n))
	}
	z[3*i], z[3*i+1], z[3*i+2] = byte(n>>16), byte(n>>8), byte(n)
}

// argBuf lends the slices of a pipeline's script arguments: runAll
// builds each call as it is sent and hands the slices out again once the
// pipeline is answered. Allocated afresh for every call, the arguments
// were 14% of the bytes profiled allocated in a pipeline run (the
// collector's work grows with them).
type argBuf struct {
	a []any
	s []string
	n []int64
}

var argBufs = sync.Pool{New: func() any { return new(argBuf) }}

// lend returns n elements of *pool, with room to append up to c in all,
// from *pool's free room (a fresh array when it has too little: what was
// lent from the old one stays valid).
func lend[T any](pool *[]T, n, c int) []T {
	p := *pool
	if cap(p)-len(p) < c {
		p = make([]T, 0, max(c, 2*cap(p), 1024))
	}
	l := len(p)
	*pool = p[:l+c]
	return p[l : l+n : l+c]
}

// anys returns n values with room for c; fresh ones when b is nil.
func (b *argBuf) anys(n, c int) []any {
	if b == nil {
		return make([]any, n, c)
	}
	return lend(&b.a, n, c)
}

// strs returns room for c strings; fresh when b is nil.
func (b *argBuf) strs(c int) []string {
	if b == nil {
		return make([]string, 0, c)
	}
	return lend(&b.s, 0, c)
}

// nums returns room for c numbers; fresh when b is nil.
func (b *argBuf) nums(c int) []int64 {
	if b == nil {
		return make([]int64, 0, c)
	}
	return lend(&b.n, 0, c)
}

// reset takes back everything lent. The values are cleared, so that what
// they point to can be collected.
func (b *argBuf) reset() {
	clear(b.a[:cap(b.a)])
	clear(b.s[:cap(b.s)])
	b.a, b.s, b.n = b.a[:0], b.s[:0], b.n[:0]
}

// argArena boxes one call's strings and numbers as pointers into its two
// slices. A slice that grows leaves the values boxed before in the old
// array, where they stay as they were.
type argArena struct {
	strs []string
	nums []int64
}

func (a *argArena) str(s string) any {
	if s == "" {
		return ""
	}
	a.strs = append(a.strs, s)
	return &a.strs[len(a.strs)-1]
}

func (a *argArena) num(n int64) any {
	if n >= 0 && n < int64(len(smallArgs)) {
		return smallArgs[n]
	}
	a.nums = append(a.nums, n)
	return &a.nums[len(a.nums)-1]
}

// fieldOrder returns u's field names in byte order with the custom
// traits last (byte order puts them there already: "trait." sorts after
// every field of section 4; the stable sort only makes sure), and the
// index of the first custom trait.
func fieldOrder(u *profile.Update) ([]string, int) {
	names := u.FieldNames()
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(traitRank(a), traitRank(b)) })
	ntr := slices.IndexFunc(names, func(n string) bool { return traitRank(n) == 1 })
	if ntr < 0 {
		ntr = len(names)
	}
	return names, ntr
}

// countSummary is what the common case needs of an update's counts.
type countSummary struct {
	counts           []profile.Count // by (source, offset)
	first            []int           // index in counts of each source's first count
	fast             bool            // offsets rise within each source
	launches, visits int             // the counts that are not repeats
	withID           int             // those of them with a messageId (when dedupe is on)
	// repeat marks the counts whose messageId an earlier count of the
	// list carries (when dedupe is on; nil when none does): both are
	// applied now, so the later one counts nothing whatever Redis knows.
	// The script is told which they are, and only checks their offsets
	// (a record delivered again is counted as that, not as a messageId
	// duplicate). A profile's many records in one batch nearly always
	// hold a producer's duplicate, and a repeat sent the whole update down
	// the script's slow path, which reads every count: 428 of 26,774
	// updates, holding 39,197 of their 94,780 counts (BENCHMARKS.md step 39).
	repeat []bool
}

// last returns the index in counts of the j-th source's last count.
func (cs countSummary) last(j int) int {
	if j+1 < len(cs.first) {
		return cs.first[j+1] - 1
	}
	return len(cs.counts) - 1
}

// summarize sorts a copy of counts (the caller's slice stays as it is) and
// sums them up.
func summarize(counts []profile.Count, dedupe bool) countSummary {
	if !slices.IsSortedFunc(counts, countCmp) {
		counts = slices.Clone(counts)
		slices.SortStableFunc(counts, countCmp)
	}
	cs := countSummary{counts: counts, fast: len(counts) <= applySlice}
	var seen map[string]bool // the messageIds so far, for long lists
	ids := 0                 // counts with a messageId so far, repeats included
	for i, c := range counts {
		if i == 0 || c.Source != counts[i-1].Source {
			cs.first = append(cs.first, i)
		} else if c.Offset <= counts[i-1].Offset {
			cs.fast = false
		}
		if dedupe && c.MessageID != "" {
			ids++
			repeat := false
			if ids > 1 && i < 16 {
				// a short list: compare with the earlier ones (a map
				// costs more than a few string compares)
				for _, o := range counts[:i] {
					if o.MessageID == c.MessageID {
						repeat = true
						break
					}
				}
			} else if ids > 1 {
				if seen == nil {
					seen = make(map[string]bool, len(counts))
					for _, o := range counts[:i] {
						if o.MessageID != "" {
							seen[o.MessageID] = true
						}
					}
				}
				repeat = seen[c.MessageID]
				seen[c.MessageID] = true
			}
			if repeat {
				if cs.repeat == nil {
					cs.repeat = make([]bool, len(counts))
				}
				cs.repeat[i] = true
				continue
			}
			cs.withID++
		}
		if c.Kind == profile.KindAppLaunch {
			cs.launches++
		} else {
			cs.visits++
		}
	}
	return cs
}

// isRepeat reports whether counts[i] repeats an earlier count's messageId.
func (cs countSummary) isRepeat(i int) bool { return cs.repeat != nil && cs.repeat[i] }

// applySlice is apply.lua's SLICE: the longest list it passes to one
// Redis call.
const applySlice = 1000

func traitRank(n string) int {
	if strings.HasPrefix(n, profile.TraitPrefix) {
		return 1
	}
	return 0
}

// packCounts writes each count's channel ("a" launch, "w" visit), source
// index (1-based, in the order of counts) and offset as one argument:
// "a1 17;w1 18;". The script reads it only on its slow path (a record at
// or below its log's watermark, or a messageId it knows), so the common
// case passes one argument instead of two per count.
func packCounts(cs countSummary) string {
	counts := cs.counts
	b := make([]byte, 0, 16*len(counts))
	si := 0
	for i, c := range counts {
		if i > 0 && c.Source != counts[i-1].Source {
			si++
		}
		if cs.isRepeat(i) {
			b = append(b, 'd') // a messageId repeat: counts nothing
		} else if c.Kind == profile.KindAppLaunch {
			b = append(b, 'a')
		} else {
			b = append(b, 'w')
		}
		b = strconv.AppendInt(b, int64(si+1), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, c.Offset, 10)
		b = append(b, ';')
	}
	return string(b)
}

// standardFields are the fields of section 4 an update carries.
var standardFields = []string{profile.FieldCustomerID, profile.FieldAnonymousID, profile.FieldEmail,
	profile.FieldPhone, profile.FieldBirthday, profile.FieldCustomerType, profile.FieldCity,
	profile.FieldCountry, profile.FieldCoordinates, profile.FieldTimezone}

// timeFields and boxedNames are the meta fields of the standard fields'
// event times and the fields' own names, boxed once.
var timeFields, boxedNames = func() (t, n map[string]any) {
	t, n = map[string]any{}, map[string]any{}
	for _, f := range standardFields {
		t[f], n[f] = "t:"+f, f
	}
	return t, n
}()

// timeField is the meta field of field n's event time.
func timeField(n string) any {
	if t, ok := timeFields[n]; ok {
		return t
	}
	return "t:" + n
}

func countCmp(a, b profile.Count) int {
	if c := strings.Compare(a.Source, b.Source); c != 0 {
		return c
	}
	return cmp.Compare(a.Offset, b.Offset)
}
