package sink

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/profiled/profiled/profile"
)

// Linking an anonymous id A to a user U (contract section 2a) moves A's
// history from A's Redis Cluster slot into U's, so no single script can do
// it. It is four steps, each one atomic, idempotent single-slot script;
// the README's "Identity" section draws them. After any step a crash, a
// restart or a rebalance leaves a state from which the next delivery of the
// same records (or any later event of A or U) completes the link:
//
//  1. reserve (U's slot, inside U's own apply.lua call): A enters U's links
//     hash as 'r', unless U reached the limit. Invariant: every claim of A
//     for U is preceded by a reservation, so the limit is settled before A
//     is claimed, and a pending reservation is visible in U's slot.
//  2. claim (A's slot, claim.lua): the link key is set to U unless it holds
//     another user (then: conflict, and step 3 gives the reservation back).
//     A's profile hash is renamed to a snapshot key. Invariant: from here
//     on apply.lua refuses A's own updates (they are routed to U), so A's
//     snapshot and watermarks are frozen, and no reader sees A's history in
//     a profile hash of A.
//  3. fold (U's slot, apply.lua mode 'f'): A's frozen history is merged into
//     U once, guarded by U's links hash ('r' -> 'f' in the same script):
//     fields by their event times, first/last seen, A's counters less the
//     messageIds U had counted too, A's messageIds, and A's watermarks as
//     U's watermarks for A's records ("r:<log>|A"), apart from U's own.
//     Routed updates of A are refused until then.
//  4. finish (A's slot, finish.lua): A's snapshot and bookkeeping are
//     deleted; only the link stays. A claim that found none (A never had
//     an event of its own) needs no finish.
//
// Each step runs for a whole batch in one pipeline, so a batch that makes
// links pays three more round trips, and one that only meets known links
// none: a link never changes, so the process caches it once step 3 is done.
//
// On one node (a single server or a Sentinel-managed master: every key on
// one server, so one script may touch both slots' keys) an anonymous id
// that is nobody's and has no history at all, the common case of a device
// id that only ever came with its user id, is linked in step 1 itself:
// apply.lua sets its link key and marks it 'f' in the user's links hash in
// the same atomic call, which is the state steps 2 and 3 would leave (with
// nothing to fold and, as the claim found nothing, no step 4). An id with
// history, or any id on a Cluster, takes the four steps.

// pair is an anonymous id and the user it is to be linked to.
type pair struct{ anon, user string }

// routed is an update of a linked anonymous id, to apply to its user.
type routed struct {
	pair
	u *profile.Update
}

// linking collects the link work of one batch.
type linking struct {
	claims []pair
	seen   map[pair]bool
	routes []routed
}

func (l *linking) claim(anon, user string) {
	p := pair{anon, user}
	if l.seen[p] {
		return
	}
	if l.seen == nil {
		l.seen = map[pair]bool{}
	}
	l.seen[p] = true
	l.claims = append(l.claims, p)
}

func (l *linking) route(anon, owner string, u *profile.Update) {
	l.claim(anon, owner)
	l.routes = append(l.routes, routed{pair{anon, owner}, u})
}

func (l *linking) empty() bool { return len(l.claims) == 0 && len(l.routes) == 0 }

// link runs steps 2 to 4 for the batch's claims, and applies the routed
// updates once their anonymous id's history is in the user's profile.
func (s *Sink) link(ctx context.Context, lk *linking, res *Result, now time.Time) error {
	// step 2: claims, in the anonymous ids' slots, in the batch's order
	claims := make([]call, len(lk.claims))
	for i, p := range lk.claims {
		k := Key(s.cfg.KeyPrefix, profile.AnonPrefix+p.anon)
		claims[i] = call{script: s.claim, keys: []string{k + ":link", k, k + ":m", k + ":d", k + ":snap"}, args: []any{p.user}}
	}
	replies, err := s.runAll(ctx, claims)
	if err == nil {
		err = s.after(2)
	}
	if err != nil {
		return err
	}
	// step 3: folds (or reservations given back), then the routed updates,
	// in the users' slots: a fold and the updates after it go to one slot,
	// in this order
	var third []call
	var folds []folded
	for i, v := range replies {
		p := lk.claims[i]
		other, snap, err := parseClaim(v)
		if err != nil {
			return err
		}
		if other != "" {
			res.link(LinkConflict, 1)
			third = append(third, call{script: s.unreserve,
				keys: []string{LinksKey(s.cfg.KeyPrefix, p.user), Key(s.cfg.KeyPrefix, p.user) + ":m"}, args: []any{p.anon}})
			continue
		}
		fu, f := snap.fold(p.user)
		third = append(third, s.applyCall(s.profileKeys(p.user, LinksKey(s.cfg.KeyPrefix, p.user)), asUser(fu, p.user), 'f', p.anon, nil, f, now))
		folds = append(folds, folded{pair: p, empty: snap.empty()})
	}
	nFold := len(third)
	for _, r := range lk.routes {
		third = append(third, s.routedCall(r.u, r.anon, r.user, now))
	}
	replies, err = s.runAll(ctx, third)
	if err == nil {
		err = s.after(3)
	}
	if err != nil {
		return err
	}
	for i, v := range replies {
		if i < nFold && third[i].script != s.apply {
			continue // a reservation given back
		}
		r, err := parseApply(v, third[i])
		if err != nil {
			return err
		}
		if i < nFold {
			if r.status == statusApplied {
				res.link(LinkLinked, 1)
				res.add(r)
			}
			continue
		}
		if r.status == statusNeedFold {
			// only if the fold before it did not run first (a slot moved
			// between the two): the caller retries the batch
			return fmt.Errorf("identity link: anonymous id's history not folded into its user yet")
		}
		res.add(r)
		res.Routed += lk.routes[i-nFold].u.Events
	}
	// step 4: the folded ids' snapshots go, in their slots. An id whose
	// claim found no history (a device id that only ever came with its
	// user id) has nothing to drop: nothing can be written to its keys
	// once it is claimed, so it needs no step 4.
	var fin []call
	for _, f := range folds {
		if f.empty {
			continue
		}
		k := Key(s.cfg.KeyPrefix, profile.AnonPrefix+f.anon)
		fin = append(fin, call{script: s.finish, keys: []string{k + ":link", k + ":snap", k + ":m", k + ":d"}})
	}
	if len(fin) > 0 {
		if _, err := s.runAll(ctx, fin); err != nil {
			return err
		}
		if err := s.after(4); err != nil {
			return err
		}
	}
	for _, f := range folds {
		s.links.put(f.anon, f.user)
	}
	return nil
}

// folded is a link whose fold was sent, and whether its anonymous id had
// any history to fold.
type folded struct {
	pair
	empty bool
}

// snapshot is an anonymous id's frozen history, as claim.lua returns it.
type snapshot struct {
	hash, meta map[string]string
	mids       []any // member, score, ...
}

// empty reports whether the anonymous id left nothing behind: no profile,
// no bookkeeping, no messageIds.
func (sn snapshot) empty() bool {
	return len(sn.hash) == 0 && len(sn.meta) == 0 && len(sn.mids) == 0
}

// parseClaim returns the other user that owns the anonymous id, or, when
// the claim is the caller's, the snapshot.
func parseClaim(v any) (other string, snap snapshot, err error) {
	vals, ok := v.([]any)
	if !ok || len(vals) < 2 {
		return "", snap, fmt.Errorf("claim script: unexpected reply %v", v)
	}
	if st, _ := vals[0].(string); st == "conflict" {
		other, _ = vals[1].(string)
		return other, snap, nil
	}
	if len(vals) != 4 {
		return "", snap, fmt.Errorf("claim script: unexpected reply %v", v)
	}
	snap.hash = pairs(vals[1])
	snap.meta = pairs(vals[2])
	snap.mids, _ = vals[3].([]any)
	return "", snap, nil
}

func pairs(v any) map[string]string {
	vals, _ := v.([]any)
	m := make(map[string]string, len(vals)/2)
	for i := 0; i+1 < len(vals); i += 2 {
		k, _ := vals[i].(string)
		val, _ := vals[i+1].(string)
		m[k] = val
	}
	return m
}

// fold is the part of a fold that only counts once: the counters, the
// remembered messageIds and the watermarks of the anonymous id.
type fold struct {
	launches, visits int64
	mids             []any // member, score, ...
	marks            []any // source, offset, ...
}

// fold turns the snapshot into an update of user plus its once-only part.
// Every field comes with the event time that set it, so the fold merges
// like any other update.
func (sn snapshot) fold(user string) (*profile.Update, *fold) {
	u := profile.NewUpdate(user)
	f := &fold{mids: sn.mids}
	for k, v := range sn.meta {
		switch {
		case strings.HasPrefix(k, "t:"):
			name := k[2:]
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				continue
			}
			var value string
			if name == profile.FieldCoordinates {
				lat, ok := sn.hash[profile.FieldLatitude]
				if !ok {
					continue
				}
				value = lat + "," + sn.hash[profile.FieldLongitude]
			} else {
				var ok bool
				if value, ok = sn.hash[name]; !ok {
					continue
				}
			}
			u.Fields[name] = profile.Stamped{Value: value, Time: t}
		case strings.HasPrefix(k, "o:"):
			f.marks = append(f.marks, k[2:], v)
		}
	}
	if fs, err := strconv.ParseInt(sn.meta["fs"], 10, 64); err == nil {
		u.First = profile.Seen{Time: fs, Channel: sn.hash[profile.FieldFirstSeenChannel]}
	}
	if ls, err := strconv.ParseInt(sn.meta["ls"], 10, 64); err == nil {
		u.Last = profile.Seen{Time: ls, Channel: sn.hash[profile.FieldLastSeenChannel]}
	}
	if u.First.IsZero() != u.Last.IsZero() { // never written apart; be safe
		u.First, u.Last = profile.Seen{}, profile.Seen{}
	}
	f.launches, _ = strconv.ParseInt(sn.hash[profile.FieldAppLaunches], 10, 64)
	f.visits, _ = strconv.ParseInt(sn.hash[profile.FieldWebVisits], 10, 64)
	return u, f
}

// linkCache remembers links that Redis holds and whose fold is done: a
// link never changes once made, so what is cached is exactly what Redis
// holds. Two generations bound it: when the newer is full it becomes the
// older, and the older is dropped.
type linkCache struct {
	mu       sync.Mutex
	max      int
	cur, old map[string]string
}

func newLinkCache(max int) *linkCache {
	return &linkCache{max: max, cur: map[string]string{}}
}

func (c *linkCache) get(anon string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u, ok := c.cur[anon]; ok {
		return u, true
	}
	if u, ok := c.old[anon]; ok {
		c.putLocked(anon, u)
		return u, true
	}
	return "", false
}

func (c *linkCache) put(anon, user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(anon, user)
}

func (c *linkCache) putLocked(anon, user string) {
	if c.max <= 0 {
		return
	}
	if len(c.cur) >= c.max/2+1 {
		c.old, c.cur = c.cur, make(map[string]string, len(c.cur))
	}
	c.cur[anon] = user
}
