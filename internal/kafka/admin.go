package kafka

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
	return describeTopics(ctx, cl, topics)
}

// describeTopics is DescribeTopics over the client cl.
func describeTopics(ctx context.Context, cl *kgo.Client, topics []string) (map[string]TopicInfo, error) {
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
// group has caught up. It dials afresh; a caller that asks again and
// again uses an OffsetWatcher.
func (c Config) GroupOffsets(ctx context.Context, group, topic string) (map[int]PartitionOffsets, error) {
	w, err := c.NewOffsetWatcher()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	return w.GroupOffsets(ctx, group, topic)
}

// OffsetWatcher reads groups' progress over one client it keeps, which
// remembers the brokers' versions, the topics' partitions and the groups'
// coordinators. A fresh client costs the broker about 20 ms of CPU (its
// version, metadata and coordinator requests): polled every 50 ms, as
// tests and the benchmark wait for a group to catch up, that was more of
// the broker's CPU than serving the group its records.
type OffsetWatcher struct {
	cl    *kgo.Client
	parts map[string]int32
}

// NewOffsetWatcher returns a watcher; Close releases its connections.
func (c Config) NewOffsetWatcher() (*OffsetWatcher, error) {
	cl, err := c.adminClient()
	if err != nil {
		return nil, err
	}
	return &OffsetWatcher{cl: cl, parts: map[string]int32{}}, nil
}

// Close closes the watcher's connections.
func (w *OffsetWatcher) Close() { w.cl.Close() }

// GroupOffsets is Config.GroupOffsets over the watcher's client.
func (w *OffsetWatcher) GroupOffsets(ctx context.Context, group, topic string) (map[int]PartitionOffsets, error) {
	n, ok := w.parts[topic]
	if !ok {
		infos, err := describeTopics(ctx, w.cl, []string{topic})
		if err != nil {
			return nil, err
		}
		n = int32(infos[topic].Partitions)
		w.parts[topic] = n
	}
	lreq := kmsg.NewPtrListOffsetsRequest()
	lreq.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	ft := kmsg.NewOffsetFetchRequestTopic()
	ft.Topic = topic
	for p := int32(0); p < n; p++ {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p
		lp.Timestamp = -1 // the end
		lt.Partitions = append(lt.Partitions, lp)
		ft.Partitions = append(ft.Partitions, p)
	}
	lreq.Topics = append(lreq.Topics, lt)
	lo, err := lreq.RequestWith(ctx, w.cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	freq := kmsg.NewPtrOffsetFetchRequest()
	freq.Group = group
	freq.Topics = append(freq.Topics, ft)
	of, err := freq.RequestWith(ctx, w.cl)
	if err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	// a group that does not exist has committed nothing (Kafka answers
	// with -1 offsets, some brokers with this error)
	if err := kerr.ErrorForCode(of.ErrorCode); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	out := make(map[int]PartitionOffsets, n)
	for _, t := range lo.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("list offsets %s/%d: %w", topic, p.Partition, err)
			}
			out[int(p.Partition)] = PartitionOffsets{Committed: -1, End: p.Offset}
		}
	}
	for _, t := range of.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("offset fetch %s/%d: %w", topic, p.Partition, err)
			}
			po := out[int(p.Partition)]
			po.Committed = p.Offset
			out[int(p.Partition)] = po
		}
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
