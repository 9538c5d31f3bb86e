package consumer

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// PartitionOffsets pairs a group's committed offset with the partition's
// end offset (high watermark). Committed is -1 when nothing is committed.
type PartitionOffsets struct {
	Committed int64
	End       int64
}

// GroupOffsets returns, per partition of topic, the group's committed
// offset and the end offset. Operators and tests use it to tell when a
// group has caught up.
func (c Conn) GroupOffsets(ctx context.Context, group, topic string) (map[int]PartitionOffsets, error) {
	infos, err := c.DescribeTopics(ctx, []string{topic})
	if err != nil {
		return nil, err
	}
	n := infos[topic].Partitions
	transport, err := c.Transport()
	if err != nil {
		return nil, err
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: transport}
	parts := make([]int, n)
	reqs := make([]kafka.OffsetRequest, n)
	for p := 0; p < n; p++ {
		parts[p] = p
		reqs[p] = kafka.LastOffsetOf(p)
	}
	lo, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	of, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	if of.Error != nil {
		return nil, fmt.Errorf("offset fetch: %w", of.Error)
	}
	out := make(map[int]PartitionOffsets, n)
	for _, p := range lo.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offsets %s/%d: %w", topic, p.Partition, p.Error)
		}
		out[p.Partition] = PartitionOffsets{Committed: -1, End: p.LastOffset}
	}
	for _, p := range of.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offset fetch %s/%d: %w", topic, p.Partition, p.Error)
		}
		po := out[p.Partition]
		po.Committed = p.CommittedOffset
		out[p.Partition] = po
	}
	return out, nil
}

// CaughtUp reports whether the group has committed every partition of
// topic up to its end.
func CaughtUp(offs map[int]PartitionOffsets) bool {
	for _, po := range offs {
		if po.End > 0 && po.Committed < po.End {
			return false
		}
	}
	return true
}
