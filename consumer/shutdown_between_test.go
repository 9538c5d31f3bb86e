package consumer_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/profiled/profiled/consumer"
	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

// TestShutdownBetweenGenerations: a generation ends by a rebalance while
// the store fails; its drain gives up on the batch in hand (the next owner
// of the partitions gets those records again). If the shutdown comes
// before the member has joined a new generation, it holds no work, so Run
// must return nil and profiled exit 0 (contract section 8). Found by the
// cluster suite: an instance kicked out of its group during a Redis
// failover exited 1, a second after SIGTERM, with "the batch in hand could
// not be finished", while it held no partition.
func TestShutdownBetweenGenerations(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events"), kfake.SeedTopics(1, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	brokers := cl.ListenAddrs()
	f := &fixture{brokers: brokers, conn: kafkaconn.Config{Brokers: brokers}, store: newFakeStore(), reg: prometheus.NewRegistry()}
	f.produceLaunches(t, 50, 10)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := f.consumer(t, ctx, consumer.Config{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		DrainTimeout: 300 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond})
	f.store.setFail(errors.New("CLUSTERDOWN The cluster is down"))
	stop := run(t, ctx, cancel, c)
	until(t, 20*time.Second, "a member whose store writes fail", func() bool {
		err := c.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "store writes are failing")
	})

	// from now on the coordinator says the group rebalances, and refuses
	// every join: the generation ends and no new one begins
	var joins atomic.Int32
	cl.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return resp, nil, true
	})
	cl.ControlKey(kmsg.JoinGroup.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		joins.Add(1)
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil, true
	})
	until(t, 20*time.Second, "the generation over, its drain given up, a join refused", func() bool {
		err := c.Ready(ctx)
		return joins.Load() > 0 && err != nil && strings.Contains(err.Error(), "not a member")
	})

	// SIGTERM, between two generations, with no batch in hand: Run must
	// return nil (exit 0)
	stop()
}
