package kafka

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicInfo describes a topic as the broker reports it.
type TopicInfo struct {
	Name       string
	ID         string // hex topic ID; empty on brokers without topic IDs
	Partitions int
}

// ErrUnknownTopic is returned for a topic that does not exist.
var ErrUnknownTopic = errors.New("topic does not exist")

// DescribeTopics returns the topics' IDs and partition counts.
func (c Config) DescribeTopics(ctx context.Context, topics []string) (map[string]TopicInfo, error) {
	cl, err := c.adminClient()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	out := make(map[string]TopicInfo, len(topics))
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if err := topicError(name, t.ErrorCode); err != nil {
			return nil, err
		}
		id := ""
		if t.TopicID != [16]byte{} {
			id = hex.EncodeToString(t.TopicID[:8])
		}
		out[name] = TopicInfo{Name: name, ID: id, Partitions: len(t.Partitions)}
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("%s: %w", t, ErrUnknownTopic)
		}
	}
	return out, nil
}

// topicError turns a topic's error code into an error that names the
// topic, and wraps ErrUnknownTopic for a missing one.
func topicError(topic string, code int16) error {
	err := kerr.ErrorForCode(code)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("%s: %w", topic, ErrUnknownTopic)
	}
	return fmt.Errorf("%s: %w", topic, err)
}

// CreateTopic creates a topic with the broker's default replication and
// configs. A topic that exists already is not an error.
func (c Config) CreateTopic(ctx context.Context, topic string, partitions int) error {
	return c.CreateTopicWithConfigs(ctx, topic, partitions, nil)
}

// CreateTopicWithConfigs is CreateTopic with topic configs set at creation
// (for example "max.message.bytes"). A topic that exists already is left
// as it is, configs included.
func (c Config) CreateTopicWithConfigs(ctx context.Context, topic string, partitions int, configs map[string]string) error {
	cl, err := c.adminClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = int32(partitions)
	rt.ReplicationFactor = -1
	for _, name := range slices.Sorted(maps.Keys(configs)) {
		cc := kmsg.NewCreateTopicsRequestTopicConfig()
		cc.Name, cc.Value = name, kmsg.StringPtr(configs[name])
		rt.Configs = append(rt.Configs, cc)
	}
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 30000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			msg := ""
			if t.ErrorMessage != nil {
				msg = " (" + *t.ErrorMessage + ")"
			}
			return fmt.Errorf("create topic %s: %w%s", topic, err, msg)
		}
	}
	return nil
}

// TopicMaxMessageBytes is the topic config that bounds a record batch.
const TopicMaxMessageBytes = "max.message.bytes"

// DefaultMaxMessageBytes is Kafka's default of max.message.bytes, taken
// when a broker reports no value at all for a topic.
const DefaultMaxMessageBytes = 1048588

// MaxMessageBytes returns the largest max.message.bytes among the topics.
// A topic without its own value reports the broker's default
// (message.max.bytes), so that is what counts for it.
func (c Config) MaxMessageBytes(ctx context.Context, topics []string) (int, error) {
	if len(topics) == 0 {
		return 0, errors.New("max.message.bytes: no topics given")
	}
	cl, err := c.adminClient()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, t := range topics {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType = kmsg.ConfigResourceTypeTopic
		r.ResourceName = t
		r.ConfigNames = []string{TopicMaxMessageBytes}
		req.Resources = append(req.Resources, r)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("describe configs: %w", err)
	}
	most, seen := 0, map[string]bool{}
	for _, r := range resp.Resources {
		if err := topicError(r.ResourceName, r.ErrorCode); err != nil {
			return 0, err
		}
		seen[r.ResourceName] = true
		v := DefaultMaxMessageBytes
		for _, cfg := range r.Configs {
			if cfg.Name == TopicMaxMessageBytes && cfg.Value != nil {
				n, err := strconv.Atoi(*cfg.Value)
				if err != nil {
					return 0, fmt.Errorf("%s: %s %q: %w", r.ResourceName, TopicMaxMessageBytes, *cfg.Value, err)
				}
				v = n
			}
		}
		most = max(most, v)
	}
	for _, t := range topics {
		if !seen[t] {
			return 0, fmt.Errorf("%s: no configs in the answer", t)
		}
	}
	return most, nil
}

// Ping checks that a broker accepts a connection and answers.
func (c Config) Ping(ctx context.Context) error {
	d, err := c.Dialer()
	if err != nil {
		return err
	}
	var last error
	for _, b := range c.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.ApiVersions()
			conn.Close()
			if err == nil {
				return nil
			}
		}
		last = err
	}
	return last
}

// PartitionOffsets pairs a group's committed offset with the partition's
// end offset (high watermark). Committed is -1 when nothing is committed.
type PartitionOffsets struct {
	Committed int64
	End       int64
}

// Lag is how many records of the partition the group has not committed.
func (p PartitionOffsets) Lag() int64 {
	if p.Committed < 0 {
		return p.End
	}
	return max(p.End-p.Committed, 0)
}

// GroupOffsets returns, per partition of topic, the group's committed
// offset and the end offset. Operators and tests use it to tell when a
// group has caught up.
func (c Config) GroupOffsets(ctx context.Context, group, topic string) (map[int]PartitionOffsets, error) {
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
	// a group that does not exist has committed nothing (Kafka answers
	// with -1 offsets, some brokers with this error)
	if of.Error != nil && !errors.Is(of.Error, kafka.GroupIdNotFound) {
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
