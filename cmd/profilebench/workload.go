package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"time"
)

// workload is the standard benchmark stream: seeded and reproducible.
type workload struct {
	events int
	users  int
	seed   int64
	base   time.Time
}

// generate returns the record values in production order: Zipf(1.1) users,
// 70% app launches, 25% web visits, 5% identify with traits, 1% malformed,
// 2% producer duplicates (the same record again), event times shuffled
// within ±10 minutes.
//
// Identity journeys: a third of the users start anonymous. Their events
// before their sign-up point (a fixed fraction of the stream, per user)
// carry only their anonymous id "a<u>"; from the sign-up point on they
// carry both ids (the first of them links the two), except 5% that still
// carry only the anonymous id: late anonymous events, after the link. The
// other users carry their user id and their device's anonymous id "d<u>"
// from their first event (so one link each, made at once).
func (w workload) generate() [][]byte {
	rng := rand.New(rand.NewSource(w.seed))
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(w.users-1))
	cities := []string{"Pune", "Mumbai", "Austin", "Berlin", "Lagos", "Lima", "Osaka"}
	zones := []string{"Asia/Kolkata", "America/Chicago", "Europe/Berlin", "Africa/Lagos", "Asia/Tokyo"}
	types := []string{"Gold", "Silver", "Bronze"}
	step := 10 * time.Minute * 6 / time.Duration(max(w.events, 1))
	out := make([][]byte, 0, w.events)
	for i := 0; len(out) < w.events; i++ {
		if len(out) > 100 && rng.Intn(100) < 2 {
			out = append(out, out[rng.Intn(len(out))])
			continue
		}
		if rng.Intn(100) == 0 {
			out = append(out, malformed(rng, i, w.base))
			continue
		}
		u := zipf.Uint64()
		at := w.base.Add(time.Duration(i) * step).Add(time.Duration(rng.Int63n(int64(20*time.Minute))) - 10*time.Minute)
		ev := map[string]any{
			"userId":      fmt.Sprintf("u%d", u),
			"anonymousId": fmt.Sprintf("d%d", u),
			"messageId":   fmt.Sprintf("m-%d-%d", w.seed, i),
			"timestamp":   at.UTC().Format(time.RFC3339Nano),
			"context": map[string]any{
				"location": map[string]any{"city": cities[u%uint64(len(cities))], "country": "X",
					"latitude": float64(u%180) - 90, "longitude": float64(u%360) - 180},
				"timezone": zones[u%uint64(len(zones))],
			},
		}
		switch r := rng.Intn(100); {
		case r < 70:
			ev["type"], ev["event"] = "track", "Application Opened"
		case r < 95:
			ev["type"] = "page"
			ev["name"] = "Pricing"
		default:
			ev["type"] = "identify"
			ev["traits"] = map[string]any{
				"email":        fmt.Sprintf("user%d@example.com", u),
				"phone":        fmt.Sprintf("+9198%08d", u%100000000),
				"birthday":     fmt.Sprintf("19%02d-%02d-%02d", 50+u%50, 1+u%12, 1+u%28),
				"customerType": types[rng.Intn(len(types))],
				"plan":         "annual",
				"score":        rng.Intn(1000),
			}
		}
		if u%3 == 0 {
			ev["anonymousId"] = fmt.Sprintf("a%d", u)
			signup := int(u*2654435761%1000) * w.events / 1000
			if len(out) < signup || rng.Intn(100) < 5 {
				delete(ev, "userId") // anonymous: before the sign-up, or late
				delete(ev, "traits")
				if ev["type"] == "identify" {
					ev["type"] = "page"
				}
			}
		}
		b, _ := json.Marshal(ev)
		out = append(out, b)
	}
	return out
}

// malformed returns one record of a rejection reason, in turn.
func malformed(rng *rand.Rand, i int, base time.Time) []byte {
	ts := base.UTC().Format(time.RFC3339)
	switch rng.Intn(4) {
	case 0:
		return []byte(`{"type":"track","event":"Application Opened","userId":"u1"`) // invalid_json
	case 1:
		return []byte(fmt.Sprintf(`{"type":"page","userId":"null","messageId":"bad-%d","timestamp":%q}`, i, ts)) // missing_identity
	case 2:
		return []byte(fmt.Sprintf(`{"type":"page","userId":"u1","messageId":"bad-%d","timestamp":"yesterday"}`, i)) // bad_timestamp
	default:
		return []byte(fmt.Sprintf(`{"type":"page","userId":"u1","messageId":"bad-%d","timestamp":"1999-12-31T00:00:00Z"}`, i)) // timestamp_out_of_range
	}
}
