package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/profile"
)

// Dead-letter headers (contract section 7).
const (
	hReason    = "profiled.error.reason"
	hDetail    = "profiled.error.detail"
	hTopic     = "profiled.source.topic"
	hPartition = "profiled.source.partition"
	hOffset    = "profiled.source.offset"
	hFailedAt  = "profiled.failed_at"
)

const (
	partitions = 6
	// every profiled process gets these; scenarios add their own
	sessionTimeout  = "3s"
	shutdownTimeout = 10 * time.Second
)

// suite holds what the scenarios share: the binary, the broker, the seed.
type suite struct {
	bin    string
	broker *broker
	admin  *admin
	seed   uint64
	n      int
	// produceLater leaves the producing to the scenario (the cluster
	// suite's are paced, so that its faults fall while events arrive)
	produceLater bool
}

// totals are the suite's figures for its last line.
var totals struct {
	sync.Mutex
	scenarios, events, lost, dup int
}

// scenario is one run from a clean topic, group, dead-letter topic and Redis.
type scenario struct {
	t     *testing.T
	su    *suite
	name  string
	rng   *rand.Rand
	start time.Time

	topic, group, dlq string
	redis             *redisServer
	st                *stream
	want              map[string]*want  // the model's profiles, one per person
	links             map[string]string // the model's links: anonymous id -> user
	fleet             *fleet
	notes             []string
	lost, dup         int
	checked           bool
}

func (su *suite) newScenario(t *testing.T, name string, idx int) *scenario {
	t.Helper()
	seed := su.seed + uint64(idx)
	s := &scenario{t: t, su: su, name: name, start: time.Now(),
		rng:   rand.New(rand.NewPCG(seed, 77)),
		topic: fmt.Sprintf("faults-%s-%d", name, seed), group: fmt.Sprintf("faults-%s-%d", name, seed),
		dlq: fmt.Sprintf("faults-%s-%d-dlq", name, seed)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		su.admin.deleteTopics(ctx, s.topic, s.dlq)
	})
	s.redis = startRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := su.admin.createTopic(ctx, s.topic, partitions); err != nil {
		t.Fatal(err)
	}
	s.st = generate(seed, su.n, time.Now())
	if err := regular(s.st.recs); err != nil { // the model is exact only for a regular stream
		t.Fatal(err)
	}
	s.want, s.links = model(s.st.recs)
	if su.produceLater {
		t.Logf("%s: the scenario produces the stream itself", name)
	} else if err := produce(ctx, su.broker.addr, s.topic, s.st.recs); err != nil {
		t.Fatalf("produce: %v", err)
	}
	good, skip, dups, deadBy := s.st.tally()
	t.Logf("%s: seed %d, %d records (%d applied, %d skipped, %d producer duplicates, dead %v), %d profiles, produced in %s",
		name, seed, len(s.st.recs), good, skip, dups, deadBy, len(s.want), time.Since(s.start).Round(time.Millisecond))
	js := s.st.journeys()
	t.Logf("%s: %d anonymous ids linked to %d users (%d with two journey devices), %d aliases, %d anonymous events of linked ids (%d sent after the link), %d messageIds sent again under the user",
		name, js.linked, js.users, js.devices2, js.aliases, js.anonymous, js.late, js.across)
	// the stream the issue asks for: 2% duplicates, 1% of every reason
	if n := len(s.st.recs); n >= 100000 {
		if dups*50 < n {
			t.Errorf("%d producer duplicates in %d records: below 2%%", dups, n)
		}
		for _, r := range profile.RejectReasons {
			if deadBy[r]*100 < n {
				t.Errorf("%d records rejected as %s in %d: below 1%%", deadBy[r], r, n)
			}
		}
	}
	s.start = time.Now()
	return s
}

// launch makes the scenario's fleet of profiled processes against the
// given Redis URL; extra settings are added to every process.
func (s *scenario) launch(redisURL string, extra ...string) *fleet {
	env := []string{
		"PROFILED_KAFKA_BROKERS=" + s.su.broker.addr,
		"PROFILED_KAFKA_TOPICS=" + s.topic,
		"PROFILED_KAFKA_GROUP=" + s.group,
		"PROFILED_DLQ_TOPIC=" + s.dlq,
		"PROFILED_REDIS_URL=" + redisURL,
		"PROFILED_KAFKA_SESSION_TIMEOUT=" + sessionTimeout,
		"PROFILED_SHUTDOWN_TIMEOUT=" + shutdownTimeout.String(),
		"PROFILED_LOG_LEVEL=info",
	}
	s.fleet = newFleet(s.t, s.su.bin, s.group, append(env, extra...))
	return s.fleet
}

func (s *scenario) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// running launches a fleet (see launch) and starts n instances of it.
func (s *scenario) running(n int, redisURL string, extra ...string) *fleet {
	f := s.launch(redisURL, extra...)
	for range n {
		f.start(s.t)
	}
	return f
}

// marks returns k progress fractions in [lo, hi], sorted: the moments of
// the faults, in committed records.
func (s *scenario) marks(k int, lo, hi float64) []float64 {
	m := make([]float64, k)
	for i := range m {
		m[i] = lo + s.rng.Float64()*(hi-lo)
	}
	sort.Float64s(m)
	return m
}

// atMarks runs fault(0) to fault(k-1) at k marks in [lo, hi], each once
// that share of the records is committed and then up to a second later.
func (s *scenario) atMarks(k int, lo, hi float64, fault func(i int)) {
	for i, m := range s.marks(k, lo, hi) {
		s.waitProgress(m, 3*time.Minute)
		s.jitter(time.Second)
		fault(i)
	}
}

// jitter sleeps a random time below d: a fault lands at a random moment,
// not at the moment a poll noticed progress.
func (s *scenario) jitter(d time.Duration) {
	time.Sleep(time.Duration(s.rng.Int64N(int64(d))))
}

// offsets returns the end offsets and the group's committed offsets.
func (s *scenario) offsets() (ends, committed map[int]int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ends, err = s.su.admin.ends(ctx, s.topic); err != nil {
		return nil, nil, err
	}
	committed, err = s.su.admin.committed(ctx, s.group, s.topic, len(ends))
	return ends, committed, err
}

// progress is the fraction of the topic the group has committed.
func (s *scenario) progress() (float64, bool) {
	ends, committed, err := s.offsets()
	if err != nil {
		return 0, false
	}
	var done, total int64
	for p, end := range ends {
		total += end
		done += max(committed[p], 0)
	}
	if total == 0 {
		return 0, false
	}
	return float64(done) / float64(total), true
}

// waitProgress waits until the group has committed frac of the topic;
// Kafka errors (the broker is being restarted) only mean "not yet".
func (s *scenario) waitProgress(frac float64, d time.Duration) {
	s.t.Helper()
	last := 0.0
	if !testenv.Poll(d, 100*time.Millisecond, func() bool {
		p, ok := s.progress()
		if ok {
			last = p
		}
		return ok && p >= frac
	}) {
		s.t.Fatalf("no progress to %.0f%% within %s (at %.1f%%)%s", frac*100, d, last*100, s.unexpectedText())
	}
}

// caughtUp reports whether the group has committed every partition to its end.
func (s *scenario) caughtUp() bool {
	ends, committed, err := s.offsets()
	if err != nil {
		return false
	}
	for p, end := range ends {
		if committed[p] != end {
			return false
		}
	}
	return true
}

func (s *scenario) unexpectedText() string {
	if u := s.fleet.unexpected(); len(u) > 0 {
		return "\n" + strings.Join(u, "\n")
	}
	return ""
}

// metric sums a counter over the running instances.
func (s *scenario) metric(name string) float64 {
	var sum float64
	c := http.Client{Timeout: 3 * time.Second}
	for _, i := range s.fleet.running() {
		resp, err := c.Get("http://" + i.http + "/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
				f := strings.Fields(l)
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				sum += v
			}
		}
	}
	return sum
}

// drain waits until the group has committed everything, then stops every
// instance with SIGTERM and checks that each exits 0 in its grace period
// and that no process of the group is left.
func (s *scenario) drain(within time.Duration) {
	s.t.Helper()
	if !testenv.Poll(within, 200*time.Millisecond, s.caughtUp) {
		p, _ := s.progress()
		s.t.Errorf("group %s did not commit every record within %s (at %.2f%%)", s.group, within, p*100)
	}
	for _, u := range s.fleet.unexpected() {
		s.t.Error(u)
	}
	for _, err := range s.fleet.stopAll(shutdownTimeout + 5*time.Second) {
		s.t.Error(err)
	}
	var left []int
	if !testenv.Poll(10*time.Second, 100*time.Millisecond, func() bool { left = s.fleet.leftovers(); return len(left) == 0 }) {
		s.t.Errorf("processes of group %s left behind: %v", s.group, left)
	}
}

// check compares everything with the model: committed offsets, every
// profile, the dead-letter topic. It adds to the scenario's lost and
// double-counted figures.
func (s *scenario) check(label string) {
	s.t.Helper()
	s.checked = true
	ends, committed, err := s.offsets()
	if err != nil {
		s.t.Errorf("%s: offsets: %v", label, err)
	}
	for p, end := range ends {
		if committed[p] != end {
			s.t.Errorf("%s: partition %d committed %d, end offset %d", label, p, committed[p], end)
		}
	}
	lost, dup := s.checkProfiles(label)
	s.checkLinks(label)
	lostDead := s.checkDeadLetters(label)
	s.lost += lost + lostDead
	s.dup += dup
}

var timeFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// checkProfiles reads every profile as analysts do (SCAN MATCH profile:{*,
// keys ending in "}") and compares it with the model, all fields and both
// counters; created_at and updated_at for format and order only. A linked
// anonymous id must have no profile of its own: its events belong to its
// user. Counts are judged per person: what the user's profile lacks is
// lost; what the user's profile and the anonymous profiles that should be
// gone hold together beyond the model is double-counted.
func (s *scenario) checkProfiles(label string) (lost, dup int) {
	s.t.Helper()
	rdb := s.redis.client()
	defer rdb.Close()
	got, err := readProfiles(rdb)
	if err != nil {
		s.t.Errorf("%s: read profiles: %v", label, err)
		return 0, 0
	}
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 12 {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else if len(problems) == 12 {
			problems = append(problems, "…")
		}
	}
	counters := func(h map[string]string) (launches, visits int) {
		launches, _ = strconv.Atoi(h["app_launches"])
		visits, _ = strconv.Atoi(h["web_visits"])
		return launches, visits
	}
	linked := map[string][]string{} // user -> profile ids of its anonymous ids
	for a, u := range s.links {
		linked[u] = append(linked[u], "anon:"+a)
	}
	mismatched := 0
	for _, id := range sortedKeys(s.want) {
		w := s.want[id]
		var staleL, staleV int
		for _, aid := range linked[id] {
			if h, ok := got[aid]; ok {
				l, v := counters(h)
				staleL, staleV = staleL+l, staleV+v
				mismatched++
				report("profile %q should be gone: its id is linked to %q (it holds %d launches, %d visits)", aid, id, l, v)
			}
		}
		h, ok := got[id]
		if !ok {
			lost += w.events
			dup += max(staleL-w.launches, 0) + max(staleV-w.visits, 0)
			mismatched++
			report("profile %q missing (%d events)", id, w.events)
			continue
		}
		l, v := counters(h)
		lost += max(w.launches-l, 0) + max(w.visits-v, 0)
		dup += max(l+staleL-w.launches, 0) + max(v+staleV-w.visits, 0)
		c, u := h["created_at"], h["updated_at"]
		if !timeFormat.MatchString(c) || !timeFormat.MatchString(u) || c > u {
			report("profile %q: created_at %q, updated_at %q", id, c, u)
		}
		exp := w.hash()
		var diffs []string
		for k, ev := range exp {
			if h[k] != ev {
				if _, has := h[k]; has {
					diffs = append(diffs, fmt.Sprintf("%s=%q want %q", k, h[k], ev))
				} else {
					diffs = append(diffs, fmt.Sprintf("%s missing, want %q", k, ev))
				}
			}
		}
		for k, gv := range h {
			if _, ok := exp[k]; !ok && k != "created_at" && k != "updated_at" {
				diffs = append(diffs, fmt.Sprintf("%s=%q should not be set", k, gv))
			}
			if s.st.never[gv] {
				diffs = append(diffs, fmt.Sprintf("%s=%q is a value that must be dropped", k, gv))
			}
		}
		if len(diffs) > 0 {
			sort.Strings(diffs)
			mismatched++
			report("profile %q: %s", id, strings.Join(diffs, "; "))
		}
	}
	for _, id := range sortedKeys(got) {
		if _, ok := s.want[id]; ok {
			continue
		}
		a, anon := strings.CutPrefix(id, "anon:")
		u := s.links[a]
		if anon && s.want[u] != nil {
			continue // judged with its user above
		}
		l, v := counters(got[id])
		dup += l + v
		mismatched++
		if anon && u != "" {
			report("profile %q should not exist: linked to %q, which has no events: %v", id, u, got[id])
		} else {
			report("profile %q should not exist: %v", id, got[id])
		}
	}
	if mismatched > 0 {
		s.t.Errorf("%s: %d of %d profiles differ from the model (%d stored):\n  %s",
			label, mismatched, len(s.want), len(got), strings.Join(problems, "\n  "))
	}
	return lost, dup
}

// checkLinks reads the link data as analysts do: profile:{anon:A}:link, a
// string holding the user id, in A's slot; profile:{U}:links, a hash whose
// fields are U's anonymous ids (without "anon:"), each "f" once the link is
// complete, in U's slot. At the end of a scenario every link the model
// knows is complete, and no other link exists.
func (s *scenario) checkLinks(label string) {
	s.t.Helper()
	rdb := s.redis.client()
	defer rdb.Close()
	owner, of, err := readLinks(rdb)
	if err != nil {
		s.t.Errorf("%s: read links: %v", label, err)
		return
	}
	var problems []string
	for _, a := range sortedKeys(s.links) {
		u := s.links[a]
		switch got, ok := owner["anon:"+a]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("profile:{anon:%s}:link missing, want %q", a, u))
		case got != u:
			problems = append(problems, fmt.Sprintf("profile:{anon:%s}:link = %q, want %q", a, got, u))
		}
		switch got, ok := of[u][a]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("profile:{%s}:links has no field %q", u, a))
		case got != "f":
			problems = append(problems, fmt.Sprintf("profile:{%s}:links field %q = %q, want \"f\" (complete)", u, a, got))
		}
	}
	for _, x := range sortedKeys(owner) {
		if a, ok := strings.CutPrefix(x, "anon:"); !ok || s.links[a] == "" {
			problems = append(problems, fmt.Sprintf("profile:{%s}:link = %q should not exist", x, owner[x]))
		}
	}
	for _, u := range sortedKeys(of) {
		for _, a := range sortedKeys(of[u]) {
			if s.links[a] != u {
				problems = append(problems, fmt.Sprintf("profile:{%s}:links field %q = %q should not exist", u, a, of[u][a]))
			}
		}
	}
	if len(problems) > 0 {
		n := len(problems)
		if n > 12 {
			problems = append(problems[:12], "…")
		}
		s.t.Errorf("%s: %d problems with the links (%d expected, %d stored):\n  %s",
			label, n, len(s.links), len(owner), strings.Join(problems, "\n  "))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func readProfiles(rdb *redis.Client) (map[string]map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var keys []string
	iter := rdb.Scan(ctx, 0, "profile:{*", 2000).Iterator()
	for iter.Next(ctx) {
		if k := iter.Val(); strings.HasSuffix(k, "}") {
			keys = append(keys, k)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(keys))
	if err := inPipelines(ctx, rdb, keys, hgetAll(ctx), func(k string, c *redis.MapStringStringCmd) {
		out[strings.TrimSuffix(strings.TrimPrefix(k, "profile:{"), "}")] = c.Val()
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// inPipelines sends one command per key, made by send, through rdb's
// pipelines, 1,000 keys to one, and hands each key with its answered
// command to got. It goes through every key and returns the first
// pipeline's error, which is that of its first failed command.
func inPipelines[C redis.Cmder](ctx context.Context, rdb *redis.Client, keys []string, send func(p redis.Pipeliner, key string) C, got func(key string, c C)) error {
	var first error
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 1000)]
		keys = keys[len(chunk):]
		cmds := make([]C, len(chunk))
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range chunk {
				cmds[i] = send(p, k)
			}
			return nil
		}); err != nil && first == nil {
			first = err
		}
		for i, k := range chunk {
			got(k, cmds[i])
		}
	}
	return first
}

func hgetAll(ctx context.Context) func(redis.Pipeliner, string) *redis.MapStringStringCmd {
	return func(p redis.Pipeliner, k string) *redis.MapStringStringCmd { return p.HGetAll(ctx, k) }
}

// readLinks returns every profile:{X}:link (X -> its value; X is anon:A
// when right) and every profile:{U}:links (U -> its fields). A key of the
// wrong type shows as a value naming the error, so that it is reported as
// a mismatch.
func readLinks(rdb *redis.Client) (owner map[string]string, of map[string]map[string]string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	scan := func(match string) ([]string, error) {
		var keys []string
		iter := rdb.Scan(ctx, 0, match, 2000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return keys, iter.Err()
	}
	owner, of = map[string]string{}, map[string]map[string]string{}
	one, err := scan("profile:{*}:link")
	if err != nil {
		return nil, nil, err
	}
	get := func(p redis.Pipeliner, k string) *redis.StringCmd { return p.Get(ctx, k) }
	// a command's error is reported as the key's value: the pipeline's is none
	_ = inPipelines(ctx, rdb, one, get, func(k string, c *redis.StringCmd) {
		v, err := c.Result()
		if err != nil {
			v = "<" + err.Error() + ">"
		}
		owner[strings.TrimSuffix(strings.TrimPrefix(k, "profile:{"), "}:link")] = v
	})
	many, err := scan("profile:{*}:links")
	if err != nil {
		return nil, nil, err
	}
	_ = inPipelines(ctx, rdb, many, hgetAll(ctx), func(k string, c *redis.MapStringStringCmd) {
		h, err := c.Result()
		if err != nil {
			h = map[string]string{"<" + err.Error() + ">": ""}
		}
		of[strings.TrimSuffix(strings.TrimPrefix(k, "profile:{"), "}:links")] = h
	})
	return owner, of, ctx.Err()
}

// checkDeadLetters reads the dead-letter topic: every rejected record must
// be there with its reason and headers, key and value unchanged (a
// producer's profiled.* header renamed), and nothing else. A record
// dead-lettered more than once (a crash between the acknowledgement and
// the commit) is one record, matched by profiled's own profiled.source.*
// headers, never by ones a producer forged. The topic, which profiled
// creates, must have room for any record the input topic accepts, so no
// letter may have lost its value. It returns the rejected records missing.
func (s *scenario) checkDeadLetters(label string) (missing int) {
	s.t.Helper()
	type pos struct {
		p int32
		o int64
	}
	bad := map[pos]*rec{}
	all := map[pos]*rec{}
	for _, r := range s.st.recs {
		all[pos{r.partition, r.offset}] = r
		if r.out == dead {
			bad[pos{r.partition, r.offset}] = r
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ends, err := s.su.admin.ends(ctx, s.dlq)
	if err != nil {
		s.t.Errorf("%s: dead-letter topic %s: %v", label, s.dlq, err)
		return len(bad)
	}
	in, err1 := s.su.admin.maxMessageBytes(ctx, s.topic)
	out, err2 := s.su.admin.maxMessageBytes(ctx, s.dlq)
	switch {
	case err1 != nil || err2 != nil:
		s.t.Errorf("%s: max.message.bytes: %v %v", label, err1, err2)
	case out != in+dlqHeaderRoom:
		s.t.Errorf("%s: dead-letter topic max.message.bytes %d, want the input topic's %d + %d", label, out, in, dlqHeaderRoom)
	}
	letters, err := readAll(ctx, s.su.broker.addr, s.dlq, ends)
	if err != nil {
		s.t.Errorf("%s: %v", label, err)
		return len(bad)
	}
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 12 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	seen := map[pos]int{}
	wrong := 0
	for _, d := range letters {
		topic, p, o, err := letterSource(d)
		if topic != s.topic || err != nil {
			wrong++
			report("dead letter at %d/%d: source headers: topic %q, %v", d.Partition, d.Offset, topic, err)
			continue
		}
		at := pos{p, o}
		r := bad[at]
		if r == nil {
			wrong++
			if src := all[at]; src != nil {
				report("record %d/%d (seq %d, outcome %d) was dead-lettered (%s) but must not be", p, o, src.seq, src.out, lastHeader(d, hReason))
			} else {
				report("dead letter names record %d/%d, which the suite never produced", p, o)
			}
			continue
		}
		seen[at]++
		why := letterProblems(d, r)
		if lastHeader(d, hValueDropped) != "" {
			why = append(why, "value dropped, though the dead-letter topic has room for any record the input topic accepts")
		}
		if len(why) > 0 {
			wrong++
			report("dead letter of %d/%d (seq %d): %s", p, o, r.seq, strings.Join(why, "; "))
		}
	}
	repeated := 0
	for at, r := range bad {
		switch n := seen[at]; {
		case n == 0:
			missing++
			report("rejected record %d/%d (seq %d, %s) is not in the dead-letter topic", at.p, at.o, r.seq, r.reason)
		case n > 1:
			repeated += n - 1
		}
	}
	if wrong > 0 || missing > 0 {
		s.t.Errorf("%s: dead-letter topic: %d letters for %d rejected records, %d wrong, %d missing:\n  %s",
			label, len(letters), len(bad), wrong, missing, strings.Join(problems, "\n  "))
	}
	if repeated > 0 {
		s.note("%d dead letters written again", repeated)
	}
	return missing
}

// Headers profiled adds to a dead letter that it had to write again
// smaller (contract section 7).
const (
	hValueDropped      = "profiled.error.value_dropped"
	hKeyHeadersDropped = "profiled.error.key_headers_dropped"
)

// ownNames are the headers profiled sets on a dead letter, each once.
var ownNames = map[string]bool{hReason: true, hDetail: true, hTopic: true, hPartition: true, hOffset: true, hFailedAt: true,
	hValueDropped: true, hKeyHeadersDropped: true}

// ownHeader reports whether a dead letter's header is profiled's: a
// profiled.* name, unless under profiled.original. (a producer's, renamed).
func ownHeader(name string) bool {
	return strings.HasPrefix(name, "profiled.") && !strings.HasPrefix(name, "profiled.original.")
}

// lastHeader returns the value of the last header of that name ("" when
// none). profiled adds its headers after the producer's, so the last is
// profiled's even where a producer's forged header was left unrenamed
// (letterProblems reports that).
func lastHeader(d *kgo.Record, name string) string {
	v := ""
	for _, h := range d.Headers {
		if h.Key == name {
			v = string(h.Value)
		}
	}
	return v
}

// letterSource reads where a dead letter's record came from, from
// profiled's own profiled.source.* headers.
func letterSource(d *kgo.Record) (topic string, partition int32, offset int64, err error) {
	p, perr := strconv.ParseInt(lastHeader(d, hPartition), 10, 32)
	o, oerr := strconv.ParseInt(lastHeader(d, hOffset), 10, 64)
	if perr != nil || oerr != nil {
		return lastHeader(d, hTopic), 0, 0, fmt.Errorf("partition %q, offset %q", lastHeader(d, hPartition), lastHeader(d, hOffset))
	}
	return lastHeader(d, hTopic), int32(p), o, nil
}

// letterProblems returns what is wrong with d as the dead letter of the
// rejected record r (contract section 7): its reason, detail and time;
// each of profiled's headers once and no other profiled.* name; the key,
// the value and the producer's headers as they came, a producer's
// profiled.* header renamed profiled.original.<rest>; or, where profiled
// had to write it again smaller, a null value with value_dropped giving
// the value's bytes, and also no key and no producer headers with
// key_headers_dropped giving their bytes.
func letterProblems(d *kgo.Record, r *rec) []string {
	var why []string
	own := map[string]int{}
	var producer []header
	for _, h := range d.Headers {
		if ownHeader(h.Key) {
			own[h.Key]++
		} else {
			producer = append(producer, header{h.Key, string(h.Value)})
		}
	}
	for _, name := range sortedKeys(own) {
		switch {
		case !ownNames[name]:
			why = append(why, fmt.Sprintf("header %s=%q is not profiled's: a producer's header not renamed", name, lastHeader(d, name)))
		case own[name] > 1:
			why = append(why, fmt.Sprintf("header %s %d times: a producer's header not renamed", name, own[name]))
		}
	}
	for _, name := range []string{hReason, hDetail, hTopic, hPartition, hOffset, hFailedAt} {
		if own[name] == 0 {
			why = append(why, "no header "+name)
		}
	}
	if got := lastHeader(d, hReason); got != r.reason {
		why = append(why, fmt.Sprintf("reason %q, want %q (detail %q)", got, r.reason, lastHeader(d, hDetail)))
	}
	if _, err := time.Parse(time.RFC3339Nano, lastHeader(d, hFailedAt)); err != nil {
		why = append(why, fmt.Sprintf("failed_at %q", lastHeader(d, hFailedAt)))
	}

	valueDropped, keyDropped := own[hValueDropped] > 0, own[hKeyHeadersDropped] > 0
	switch {
	case !valueDropped && keyDropped:
		why = append(why, "key and headers dropped, value kept")
	case !valueDropped && !bytes.Equal(d.Value, r.value):
		why = append(why, fmt.Sprintf("value changed (%d bytes, want %d)", len(d.Value), len(r.value)))
	case valueDropped && d.Value != nil:
		why = append(why, fmt.Sprintf("value dropped but %d bytes sent", len(d.Value)))
	case valueDropped && lastHeader(d, hValueDropped) != strconv.Itoa(len(r.value)):
		why = append(why, fmt.Sprintf("%s=%q, the value was %d bytes", hValueDropped, lastHeader(d, hValueDropped), len(r.value)))
	}
	want := letterHeaders(r)
	if keyDropped {
		n := len(r.key)
		for _, h := range append([]header{{seqHeader, strconv.Itoa(r.seq)}}, r.headers...) {
			n += len(h.key) + len(h.value)
		}
		if d.Key != nil || len(producer) > 0 {
			why = append(why, "key and headers dropped but sent")
		}
		if got := lastHeader(d, hKeyHeadersDropped); got != strconv.Itoa(n) {
			why = append(why, fmt.Sprintf("%s=%q, key and headers were %d bytes", hKeyHeadersDropped, got, n))
		}
		return why
	}
	if !bytes.Equal(d.Key, r.key) {
		why = append(why, fmt.Sprintf("key %q, want %q", d.Key, r.key))
	}
	if !slices.Equal(producer, want) {
		why = append(why, fmt.Sprintf("producer headers %q, want %q", producer, want))
	}
	return why
}

// report prints the scenario's line and adds it to the totals.
func (s *scenario) report() {
	took := time.Since(s.start).Seconds()
	line := fmt.Sprintf("scenario %s: %d events, %d lost, %d double-counted", s.name, len(s.st.recs), s.lost, s.dup)
	for _, n := range s.notes {
		line += ", " + n
	}
	if !s.checked || s.t.Failed() {
		line += ", FAILED"
	}
	fmt.Printf("%s, %.1fs\n", line, took)
	totals.Lock()
	totals.scenarios++
	totals.events += len(s.st.recs)
	totals.lost += s.lost
	totals.dup += s.dup
	totals.Unlock()
	if s.lost > 0 || s.dup > 0 {
		s.t.Errorf("%d events lost, %d double-counted", s.lost, s.dup)
	}
}
