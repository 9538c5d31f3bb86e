package e2e_test

import (
	"fmt"
	"testing"
	"time"
)

// One busy profile's share of a batch must not stop the instance (issue:
// Lua's unpack stops at about 8,000 values, and a batch holding 5,000 visits
// with a messageId for one profile used to fail for good, taken for an
// outage and retried forever, so nothing was applied for anyone). At the
// largest batch size the service may be given, every profile is applied.
func TestOneBusyProfileDoesNotStallTheInstance(t *testing.T) {
	e, o := setupTopic(t, 1)
	o.env = append(o.env, "PROFILED_BATCH_SIZE=100000", "PROFILED_BATCH_TIME=3s")
	ts := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339Nano)
	var values [][]byte
	for i := range 20000 {
		values = append(values, js(map[string]any{"type": "page", "userId": "bot", "messageId": fmt.Sprint("bot-", i), "timestamp": ts}))
	}
	values = append(values, js(map[string]any{"type": "page", "userId": "innocent", "messageId": "i-1", "timestamp": ts}))
	e.produce(t, o.topic, values)
	e.start(t, o)
	e.waitCaughtUp(t, o.group, o.topic, 120*time.Second)
	got := e.profiles(t, o.prefix)
	if got["bot"]["web_visits"] != "20000" || got["innocent"]["web_visits"] != "1" {
		t.Fatalf("bot %q, innocent %q visits", got["bot"]["web_visits"], got["innocent"]["web_visits"])
	}
}
