package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// counts are a profile's expected app_launches and web_visits.
type counts struct{ launches, visits int }

// workload makes n seeded events over users: launches, visits, identifies
// and ignored track events, with messageIds (some missing), exact producer
// duplicates, clashing event times, and field values that overwrite one
// another. It returns the values in production order and the counts the
// contract demands: each distinct event once.
func workload(seed uint64, n, users int) ([][]byte, map[string]counts) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Hour)
	cities := []string{"Pune", "Mumbai", "Austin", "Berlin", "Lagos"}
	types := []string{"Gold", "Silver", "Bronze"}
	zones := []string{"Asia/Kolkata", "America/Chicago", "Europe/Berlin"}
	var values [][]byte
	for i := 0; len(values) < n; i++ {
		if len(values) > 10 && rng.IntN(50) == 0 { // a producer duplicate
			if v := values[rng.IntN(len(values))]; bytes.Contains(v, []byte(`"messageId"`)) {
				values = append(values, v)
				continue
			}
		}
		u := rng.IntN(users)
		ev := map[string]any{"messageId": fmt.Sprintf("msg-%d-%d", seed, i)}
		if u%5 == 0 {
			ev["anonymousId"] = fmt.Sprintf("anon-%d", u)
		} else {
			ev["userId"] = fmt.Sprintf("user-%d", u)
			if rng.IntN(2) == 0 {
				ev["anonymousId"] = fmt.Sprintf("device-%d", rng.IntN(3))
			}
		}
		if rng.IntN(20) == 0 {
			delete(ev, "messageId")
		}
		// seconds granularity and a small range: many equal times
		ts := base.Add(time.Duration(rng.IntN(48*3600)) * time.Second / time.Duration(1+rng.IntN(2)*999))
		ev["timestamp"] = ts.Format(time.RFC3339Nano)
		ctx := map[string]any{}
		if rng.IntN(2) == 0 {
			ctx["location"] = map[string]any{"city": cities[rng.IntN(len(cities))], "country": "X",
				"latitude": float64(rng.IntN(180)-90) / 2, "longitude": float64(rng.IntN(360)-180) / 4}
		}
		if rng.IntN(3) == 0 {
			ctx["timezone"] = zones[rng.IntN(len(zones))]
		}
		traits := map[string]any{}
		if rng.IntN(3) == 0 {
			traits["email"] = fmt.Sprintf("User%d@Example.com", rng.IntN(3))
		}
		if rng.IntN(4) == 0 {
			traits["customerType"] = types[rng.IntN(len(types))]
		}
		if rng.IntN(4) == 0 {
			traits["score"] = rng.IntN(100)
		}
		kind := rng.IntN(20)
		switch {
		case kind < 12:
			ev["type"], ev["event"] = "track", "Application Opened"
			if len(traits) > 0 {
				ctx["traits"] = traits
			}
		case kind < 17:
			ev["type"] = "page"
			if len(traits) > 0 {
				ctx["traits"] = traits
			}
		case kind < 19:
			ev["type"] = "identify"
			ev["traits"] = traits
		default:
			ev["type"], ev["event"] = "track", "Product Viewed"
		}
		ev["context"] = ctx
		values = append(values, js(ev))
	}
	return values, recount(values)
}

// recount is the reference for counts, from the contract alone: per
// profile id, launches and visits with distinct messageIds, plus every one
// without a messageId; identify events create a profile with zero counts.
func recount(values [][]byte) map[string]counts {
	want := map[string]counts{}
	seen := map[string]bool{}
	for _, v := range values {
		var ev struct {
			Type, Event, UserID, AnonymousID, MessageID string
		}
		if json.Unmarshal(v, &ev) != nil {
			continue
		}
		id := ev.UserID
		if id == "" {
			id = "anon:" + ev.AnonymousID
		}
		launch := ev.Type == "track" && ev.Event == "Application Opened"
		visit := ev.Type == "page"
		if !launch && !visit && ev.Type != "identify" {
			continue
		}
		c := want[id]
		if (launch || visit) && (ev.MessageID == "" || !seen[id+"|"+ev.MessageID]) {
			seen[id+"|"+ev.MessageID] = true
			if launch {
				c.launches++
			} else {
				c.visits++
			}
		}
		want[id] = c
	}
	return want
}
