package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/profiled/profiled/internal/feed"
)

// An anonymous visitor signs up (identify with both ids, keyed by the user
// id, so on another partition than the visits keyed by the anonymous id),
// launches the app, and a late anonymous event arrives after the link; a
// second device joins by alias; a third id is claimed by another user
// first, so a later link of it is a conflict. Contract section 2a.
func TestIdentityJourneyOnTheRealBroker(t *testing.T) {
	e, o := setupTopic(t, 4)
	now := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	at := func(d time.Duration) string { return now.Add(d).Format("2006-01-02T15:04:05.000Z") }
	if feed.Key(js(map[string]any{"anonymousId": "visitor-1"})) == nil {
		t.Fatal("records must be keyed")
	}
	first := [][]byte{
		js(map[string]any{"type": "page", "anonymousId": "visitor-1", "messageId": "v1", "timestamp": ts(0), "context": map[string]any{"location": map[string]any{"city": "Pune"}}}),
		js(map[string]any{"type": "page", "anonymousId": "visitor-1", "messageId": "v2", "timestamp": ts(time.Minute)}),
		js(map[string]any{"type": "identify", "userId": "person-1", "anonymousId": "visitor-1", "messageId": "i1", "timestamp": ts(10 * time.Minute), "traits": map[string]any{"email": "p@example.com"}}),
		js(map[string]any{"type": "track", "event": "App Launched", "userId": "person-1", "messageId": "l1", "timestamp": ts(20 * time.Minute)}),
		// a second device, linked by alias
		js(map[string]any{"type": "track", "event": "Application Opened", "anonymousId": "phone-1", "messageId": "p1", "timestamp": ts(30 * time.Minute)}),
		js(map[string]any{"type": "alias", "userId": "person-1", "previousId": "phone-1", "messageId": "al1", "timestamp": ts(31 * time.Minute)}),
		// shared-1 belongs to other-1 first; person-1's later link of it conflicts
		js(map[string]any{"type": "identify", "userId": "other-1", "anonymousId": "shared-1", "messageId": "o1", "timestamp": ts(40 * time.Minute)}),
	}
	e.produce(t, o.topic, first)
	p := e.start(t, o)
	e.waitCaughtUp(t, o.group, o.topic, 60*time.Second)
	late := [][]byte{
		js(map[string]any{"type": "page", "anonymousId": "visitor-1", "messageId": "v0", "timestamp": ts(-time.Hour)}),  // late, and the earliest
		js(map[string]any{"type": "page", "anonymousId": "visitor-1", "messageId": "v2", "timestamp": ts(time.Minute)}), // a copy of v2
		js(map[string]any{"type": "page", "userId": "person-1", "anonymousId": "shared-1", "messageId": "c1", "timestamp": ts(50 * time.Minute)}),
	}
	e.produce(t, o.topic, late)
	e.waitCaughtUp(t, o.group, o.topic, 60*time.Second)

	got := e.profiles(t, o.prefix)
	for _, anon := range []string{"anon:visitor-1", "anon:phone-1", "anon:shared-1"} {
		if _, ok := got[anon]; ok {
			t.Errorf("%s still has a profile: %v", anon, got[anon])
		}
	}
	u := got["person-1"]
	want := map[string]string{
		"first_seen": at(-time.Hour), "first_seen_channel": "web",
		"last_seen": at(50 * time.Minute), "last_seen_channel": "web",
		"web_visits": "4", "app_launches": "2", // v0 v1 v2 c1; l1 p1
		"email": "p@example.com", "city": "Pune", "customer_id": "person-1",
		"anonymous_id": "shared-1", // the latest anonymousId of the person's events
	}
	for k, v := range want {
		if u[k] != v {
			t.Errorf("person-1 %s = %q, want %q", k, u[k], v)
		}
	}
	ctx := context.Background()
	links, _ := e.rdb.HGetAll(ctx, o.prefix+"profile:{person-1}:links").Result()
	if len(links) != 2 || links["visitor-1"] != "f" || links["phone-1"] != "f" {
		t.Errorf("person-1's links = %v, want visitor-1 and phone-1", links)
	}
	if owner, _ := e.rdb.Get(ctx, o.prefix+"profile:{anon:shared-1}:link").Result(); owner != "other-1" {
		t.Errorf("shared-1 linked to %q, want other-1 (the first link wins)", owner)
	}
	_, metrics := p.get("/metrics")
	for _, want := range []string{
		`profiled_identity_links_total{result="linked"} 3`,
		`profiled_identity_links_total{result="conflict"} 1`,
		`profiled_events_applied_total{kind="alias"} 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.Contains(metrics, "profiled_events_routed_total 2\n") { // v0 and the copy of v2
		t.Errorf("metrics:\n%s", grep(metrics, "profiled_events_routed_total"))
	}
}
