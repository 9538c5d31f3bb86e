package e2e_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// checkCounts compares the stored profiles with the reference counts: the
// same set of profiles, each counter exact.
func checkCounts(t *testing.T, got map[string]map[string]string, want map[string]counts) {
	t.Helper()
	lost, double := 0, 0
	for id, c := range want {
		h, ok := got[id]
		if !ok {
			t.Errorf("profile %s missing", id)
			continue
		}
		l, _ := strconv.Atoi(h["app_launches"])
		v, _ := strconv.Atoi(h["web_visits"])
		if l != c.launches || v != c.visits {
			t.Errorf("profile %s: launches/visits %d/%d, want %d/%d", id, l, v, c.launches, c.visits)
		}
		lost += max(c.launches-l, 0) + max(c.visits-v, 0)
		double += max(l-c.launches, 0) + max(v-c.visits, 0)
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("profile %s should not exist", id)
		}
	}
	if lost+double > 0 {
		t.Errorf("%d events lost, %d double-counted", lost, double)
	}
}

func TestEachKindCreatesOrNotAProfile(t *testing.T) {
	e, o := setupTopic(t, 3)
	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	values := [][]byte{
		js(map[string]any{"type": "track", "event": "Application Opened", "userId": "launcher", "messageId": "a1", "timestamp": ts(0)}),
		js(map[string]any{"type": "track", "event": "Application Opened", "userId": "launcher", "messageId": "a1", "timestamp": ts(0)}), // same messageId
		js(map[string]any{"type": "track", "event": "App Launched", "userId": "launcher", "messageId": "a2", "timestamp": ts(time.Minute)}),
		js(map[string]any{"type": "page", "anonymousId": "visitor", "messageId": "w1", "timestamp": ts(0)}),
		js(map[string]any{"type": "identify", "userId": "identified", "messageId": "i1", "timestamp": ts(0), "traits": map[string]any{"email": "x@y.io"}}),
		js(map[string]any{"type": "track", "event": "Product Viewed", "userId": "ignored-track", "timestamp": ts(0)}),
		js(map[string]any{"type": "screen", "userId": "ignored-screen", "timestamp": ts(0)}),
		js(map[string]any{"type": "alias", "userId": "alias-only", "previousId": "x"}), // links, creates no profile
	}
	e.produce(t, o.topic, values)
	p := e.start(t, o)
	e.waitCaughtUp(t, o.group, o.topic, 60*time.Second)
	got := e.profiles(t, o.prefix)
	if len(got) != 3 {
		t.Fatalf("profiles %v, want launcher, anon:visitor, identified", sortedIDs(got))
	}
	l := got["launcher"]
	if l["app_launches"] != "2" || l["web_visits"] != "0" || l["first_seen"] != now.Format("2006-01-02T15:04:05.000Z") ||
		l["last_seen"] != now.Add(time.Minute).Format("2006-01-02T15:04:05.000Z") || l["first_seen_channel"] != "app" {
		t.Errorf("launcher = %v", l)
	}
	if v := got["anon:visitor"]; v["web_visits"] != "1" || v["app_launches"] != "0" || v["last_seen_channel"] != "web" || v["anonymous_id"] != "visitor" {
		t.Errorf("anon:visitor = %v", v)
	}
	i := got["identified"]
	if _, ok := i["first_seen"]; ok || i["email"] != "x@y.io" || i["app_launches"] != "0" || i["customer_id"] != "identified" {
		t.Errorf("identified = %v", i)
	}
	for _, h := range got {
		if !(h["created_at"] <= h["updated_at"]) || len(h["created_at"]) != len("2026-11-28T09:15:02.123Z") {
			t.Errorf("created_at %q updated_at %q", h["created_at"], h["updated_at"])
		}
	}
	if code, body := p.get("/metrics"); code != http.StatusOK ||
		!strings.Contains(body, `profiled_records_skipped_total{reason="not_launch_event"} 1`) ||
		!strings.Contains(body, `profiled_records_skipped_total{reason="unhandled_type"} 1`) ||
		!strings.Contains(body, `profiled_events_applied_total{kind="alias"} 1`) ||
		!strings.Contains(body, `profiled_duplicates_ignored_total{reason="message_id"} 1`) ||
		!strings.Contains(body, `profiled_profiles_created_total 3`) {
		t.Errorf("metrics:\n%s", grep(body, "profiled_"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestShuffledInputGivesIdenticalProfiles feeds the same events in order
// through one partition and shuffled through six, and compares the stored
// hashes byte for byte.
func TestShuffledInputGivesIdenticalProfiles(t *testing.T) {
	e := setup(t)
	values, want := workload(1, 3000, 60)

	oo := e.onNewTopic(t, 1)
	e.produce(t, oo.topic, values)

	shuffled := append([][]byte(nil), values...)
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	so := e.onNewTopic(t, 6)
	so.env = []string{"PROFILED_BATCH_SIZE=37"} // different batch boundaries too
	e.produce(t, so.topic, shuffled)

	e.start(t, oo)
	e.start(t, so)
	e.waitCaughtUp(t, oo.group, oo.topic, 90*time.Second)
	e.waitCaughtUp(t, so.group, so.topic, 90*time.Second)
	a, b := withoutClock(e.profiles(t, oo.prefix)), withoutClock(e.profiles(t, so.prefix))
	checkCounts(t, a, want)
	if !reflect.DeepEqual(a, b) {
		for id := range a {
			if !reflect.DeepEqual(a[id], b[id]) {
				t.Errorf("profile %s differs:\nordered  %v\nshuffled %v", id, a[id], b[id])
				break
			}
		}
		t.Fatalf("%d ordered profiles, %d shuffled; they differ", len(a), len(b))
	}
}

// TestKillNineBetweenRedisWriteAndCommit crashes the real process after a
// batch reached Redis and before its offsets were committed; the restarted
// process gets the batch again and must not count it twice.
func TestKillNineBetweenRedisWriteAndCommit(t *testing.T) {
	e, o := setupTopic(t, 3)
	values, want := workload(2, 2000, 40)
	e.produce(t, o.topic, values)

	marker := t.TempDir() + "/stalled"
	crash := o
	crash.env = []string{"PROFILED_TEST_STALL_BEFORE_COMMIT=" + marker, "PROFILED_BATCH_SIZE=5000", "PROFILED_BATCH_TIME=2s"}
	withHook := *e
	withHook.bin = faultInjectBinary(t) // the production binary has no stall hook
	p := withHook.start(t, crash)
	eventually(t, 60*time.Second, "the stall before the first commit", func() bool { return fileExists(marker) })
	if n := len(e.profiles(t, o.prefix)); n == 0 {
		t.Fatal("nothing written to Redis before the stall")
	}
	for part, po := range e.offsets(t, o.group, o.topic) {
		if po.Committed > 0 {
			t.Fatalf("partition %d committed %d before the stall", part, po.Committed)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 10*time.Second)

	e.start(t, o)
	e.waitCaughtUp(t, o.group, o.topic, 90*time.Second)
	checkCounts(t, e.profiles(t, o.prefix), want)
}

func fileExists(path string) bool {
	_, err := osStat(path)
	return err == nil
}

// TestSIGTERMMidStreamCommitsWhatItWrote stops profiled while it works and
// checks the exit code, the grace period and that nothing written to Redis
// is left uncommitted: a fresh instance then completes the counts exactly.
func TestSIGTERMMidStreamCommitsWhatItWrote(t *testing.T) {
	e, o := setupTopic(t, 3)
	values, want := workload(3, 20000, 500)
	o.env = []string{"PROFILED_BATCH_SIZE=200", "PROFILED_SHUTDOWN_TIMEOUT=10s"}
	e.produce(t, o.topic, values)
	p := e.start(t, o)
	eventually(t, 60*time.Second, "some progress", func() bool {
		var done int64
		for _, po := range e.offsets(t, o.group, o.topic) {
			done += max(po.Committed, 0)
		}
		return done > 0
	})
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s to stop, grace period 10s", d)
	}
	if !strings.Contains(p.out.String(), "stopped cleanly") {
		t.Fatal("no clean stop logged")
	}
	// committed offsets match Redis: every record below the committed
	// offset is counted, none above it.
	committed := e.offsets(t, o.group, o.topic)
	var below [][]byte
	all := e.readAll(t, o.topic)
	for _, m := range all {
		if po := committed[m.Partition]; m.Offset < po.Committed {
			below = append(below, m.Value)
		}
	}
	if len(below) == len(all) {
		t.Log("profiled finished the whole topic before SIGTERM; the check below is weaker")
	}
	checkCounts(t, e.profiles(t, o.prefix), recount(below))

	e.start(t, o)
	e.waitCaughtUp(t, o.group, o.topic, 90*time.Second)
	checkCounts(t, e.profiles(t, o.prefix), want)
}

// TestTwoInstancesShareTheGroup runs two processes in one group; they split
// the partitions and build the same profiles one process builds.
func TestTwoInstancesShareTheGroup(t *testing.T) {
	e, o := setupTopic(t, 6)
	values, want := workload(4, 6000, 200)
	o.env = []string{"PROFILED_BATCH_SIZE=100"}
	p1 := e.start(t, o)
	p2 := e.start(t, o)
	eventually(t, 60*time.Second, "both instances to get partitions", func() bool {
		return assigned(p1) > 0 && assigned(p2) > 0 && assigned(p1)+assigned(p2) == 6
	})
	e.produce(t, o.topic, values)
	e.waitCaughtUp(t, o.group, o.topic, 90*time.Second)
	checkCounts(t, e.profiles(t, o.prefix), want)

	single := e.opts(t, o.topic)
	e.start(t, single)
	e.waitCaughtUp(t, single.group, o.topic, 90*time.Second)
	if a, b := withoutClock(e.profiles(t, o.prefix)), withoutClock(e.profiles(t, single.prefix)); !reflect.DeepEqual(a, b) {
		t.Fatal("two instances built different profiles from one instance")
	}
}

func assigned(p *proc) int {
	_, body := p.get("/metrics")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "profiled_assigned_partitions ") {
			n, _ := strconv.Atoi(strings.TrimPrefix(l, "profiled_assigned_partitions "))
			return n
		}
	}
	return -1
}

// TestRecreatedTopicCountsNewRecords deletes and recreates the input topic:
// offsets start at 0 again, and the new records must count although their
// offsets are at or below the watermarks of the old ones.
func TestRecreatedTopicCountsNewRecords(t *testing.T) {
	e, o := setupTopic(t, 1)
	mk := func(id string) []byte {
		return js(map[string]any{"type": "track", "event": "Application Opened", "userId": "same-user", "messageId": id,
			"timestamp": time.Now().UTC().Format(time.RFC3339Nano)})
	}
	e.produce(t, o.topic, [][]byte{mk("old-1"), mk("old-2"), mk("old-3")})
	p := e.start(t, o)
	e.waitCaughtUp(t, o.group, o.topic, 60*time.Second)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := deleteTopic(ctx, e, o.topic); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "topic recreated", func() bool {
		return e.conn.CreateTopic(ctx, o.topic, 1) == nil && func() bool {
			infos, err := e.conn.DescribeTopics(ctx, []string{o.topic})
			return err == nil && infos[o.topic].Partitions == 1
		}()
	})
	e.produce(t, o.topic, [][]byte{mk("new-1"), mk("new-2")})
	// a new group: the old one's committed offset is gone with the topic
	o2 := o
	o2.group = uniq(t, "group2")
	e.start(t, o2)
	e.waitCaughtUp(t, o2.group, o.topic, 60*time.Second)
	if got := e.profiles(t, o.prefix)["same-user"]["app_launches"]; got != "5" {
		t.Fatalf("app_launches = %s after the topic was recreated, want 5", got)
	}
}
