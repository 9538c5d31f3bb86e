package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrReplicas is returned (wrapped) when a master's replicas did not
// acknowledge a batch's writes within the timeout: the batch is not
// durable yet, so the caller must not commit it, and retries it.
var ErrReplicas = errors.New("replicas did not acknowledge the writes")

// runWaited is runAll for MinReplicas > 0. WAIT counts only the writes of
// the connection it is sent on, so the calls are grouped by the master that
// owns their keys, and each group is one pipeline on one connection that
// ends with WAIT (a keyless WAIT that a Cluster client routes to any node
// would say nothing about the writes). Redis' own words apply: WAIT does
// not make Redis strongly consistent; it makes a failover to one of the
// replicas that acknowledged keep the writes.
func (s *Sink) runWaited(ctx context.Context, calls []call) ([]any, error) {
	groups := map[*redis.Client][]int{}
	var nodes []*redis.Client
	add := func(n *redis.Client, i int) {
		if _, ok := groups[n]; !ok {
			nodes = append(nodes, n)
		}
		groups[n] = append(groups[n], i)
	}
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		for i, cl := range calls {
			n, err := c.MasterForKey(ctx, cl.keys[0])
			if err != nil {
				return nil, fmt.Errorf("master of a key: %w", err)
			}
			add(n, i)
		}
	case *redis.Client: // one server, or Sentinel's current master
		for i := range calls {
			add(c, i)
		}
	default:
		return nil, fmt.Errorf("waiting for replicas needs a single-server, Sentinel or Cluster client, not %T", s.client)
	}
	out := make([]any, len(calls))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for j, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[j] = s.runNode(ctx, n, calls, groups[n], out)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if cc, ok := s.client.(*redis.ClusterClient); ok && movedOrAsk(err) {
			cc.ReloadState(ctx) // a slot moved: group by the new owners next time
		}
		return nil, err
	}
	return out, nil
}

// runNode runs the calls at idx on one master in one pipeline followed by
// WAIT, loading the scripts once if the master answers NOSCRIPT.
func (s *Sink) runNode(ctx context.Context, n *redis.Client, calls []call, idx []int, out []any) error {
	for attempt := 0; ; attempt++ {
		cmds := make([]*redis.Cmd, len(idx))
		var wait *redis.Cmd
		_, err := n.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range idx {
				cmds[j] = calls[i].cmd(ctx, nil)
				_ = p.Process(ctx, cmds[j])
			}
			wait = p.Do(ctx, "WAIT", s.cfg.MinReplicas, s.cfg.ReplicaTimeout.Milliseconds())
			return nil
		})
		noScript := false
		for _, c := range cmds {
			if isNoScript(c.Err()) {
				noScript = true
			}
		}
		if noScript && attempt < 2 {
			s.m.reloads.Inc()
			for _, sc := range s.scripts() {
				if err := sc.Load(ctx, n).Err(); err != nil {
					return fmt.Errorf("load scripts: %w", err)
				}
			}
			continue // every call of the group again: each is idempotent
		}
		for j, c := range cmds {
			if cerr := c.Err(); cerr != nil {
				return fmt.Errorf("profile script: %w", cerr)
			}
			out[idx[j]] = c.Val()
		}
		if err != nil {
			return err
		}
		got, err := wait.Int64()
		if err != nil {
			return fmt.Errorf("wait for replicas: %w", err)
		}
		if got < int64(s.cfg.MinReplicas) {
			return fmt.Errorf("%w: %d of %d replicas of %s within %s", ErrReplicas, got, s.cfg.MinReplicas, n.Options().Addr, s.cfg.ReplicaTimeout)
		}
		return nil
	}
}

func movedOrAsk(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "MOVED ") || strings.Contains(msg, "ASK ") || strings.Contains(msg, "CLUSTERDOWN")
}
