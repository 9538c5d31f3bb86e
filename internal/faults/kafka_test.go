package faults_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// seqHeader is a header every produced record carries: the dead-letter
// topic must keep it unchanged.
const seqHeader = "fault-seq"

// admin talks to the suite's broker: topics, end offsets, a group's
// committed offsets. It is written here rather than borrowed from the
// product, so that a wrong answer cannot hide a wrong product.
type admin struct {
	addr string
	cl   *kafka.Client
}

func newAdmin(addr string) *admin {
	return &admin{addr: addr, cl: &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}}
}

// createTopic creates a topic and waits until every partition has a leader.
func (a *admin) createTopic(ctx context.Context, name string, partitions int) error {
	resp, err := a.cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: name, NumPartitions: partitions, ReplicationFactor: 1,
	}}})
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := resp.Errors[name]; err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	for ctx.Err() == nil {
		if n, err := a.partitions(ctx, name); err == nil && n == partitions {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ctx.Err()
}

func (a *admin) deleteTopics(ctx context.Context, names ...string) {
	_, _ = a.cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
}

// partitions returns how many partitions with a leader the topic has. A
// topic created moments ago by another client may be unknown to this
// client's cached metadata for a few seconds: that is waited out.
func (a *admin) partitions(ctx context.Context, topic string) (int, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := a.partitionsOnce(ctx, topic)
		if err == nil || !errors.Is(err, kafka.UnknownTopicOrPartition) || time.Now().After(deadline) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return n, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (a *admin) partitionsOnce(ctx context.Context, topic string) (int, error) {
	md, err := a.cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, err
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return 0, t.Error
		}
		n := 0
		for _, p := range t.Partitions {
			if p.Error == nil && p.Leader.Host != "" {
				n++
			}
		}
		return n, nil
	}
	return 0, errors.New("topic " + topic + " not in metadata")
}

// ends returns each partition's end offset (high watermark).
func (a *admin) ends(ctx context.Context, topic string) (map[int]int64, error) {
	n, err := a.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, n)
	for p := range reqs {
		reqs[p] = kafka.LastOffsetOf(p)
	}
	resp, err := a.cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.LastOffset
	}
	if len(out) != n {
		return nil, fmt.Errorf("end offsets of %d of %d partitions", len(out), n)
	}
	return out, nil
}

// committed returns the group's committed offset of each partition of
// topic (-1 when none).
func (a *admin) committed(ctx context.Context, group, topic string, partitions int) (map[int]int64, error) {
	parts := make([]int, partitions)
	for p := range parts {
		parts[p] = p
	}
	resp, err := a.cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// produce writes the records in order, each with its own key, value,
// timestamp, sequence header and headers, and notes where each one landed.
// A record at the broker's size limit goes alone in a batch of its own,
// through a client allowed batches that large, between flushes, so that
// its batch is exactly the size batchBytes computed and the order of the
// partition is kept.
func produce(ctx context.Context, addr, topic string, recs []*rec) error {
	p, err := newProducer(addr, topic)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := p.send(ctx, r); err != nil {
			p.close(ctx)
			return err
		}
	}
	return p.close(ctx)
}

// producer is produce's two clients and the first error of an
// acknowledgement; send and close are produce's steps, for callers that
// pace the records.
type producer struct {
	cl, big *kgo.Client
	mu      sync.Mutex
	first   error
}

func newProducer(addr, topic string) (*producer, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(20000), kgo.ProducerBatchCompression(kgo.NoCompression())}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	big, err := kgo.NewClient(append(opts, kgo.ProducerBatchMaxBytes(2*brokerMaxMessageBytes))...)
	if err != nil {
		cl.Close()
		return nil, err
	}
	return &producer{cl: cl, big: big}, nil
}

// send produces one record; one at the size limit is produced alone and
// waited for.
func (p *producer) send(ctx context.Context, r *rec) error {
	kr := &kgo.Record{Key: r.key, Value: r.value, Timestamp: r.ts,
		Headers: []kgo.RecordHeader{{Key: seqHeader, Value: []byte(strconv.Itoa(r.seq))}}}
	for _, h := range r.headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.key, Value: []byte(h.value)})
	}
	done := func(kr *kgo.Record, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			if p.first == nil {
				p.first = fmt.Errorf("record seq %d: %w", r.seq, err)
			}
			return
		}
		r.partition, r.offset = kr.Partition, kr.Offset
	}
	if !r.atLimit {
		p.cl.Produce(ctx, kr, done)
		return nil
	}
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	p.big.Produce(ctx, kr, done)
	return p.big.Flush(ctx)
}

// close flushes both clients, closes them and returns the first error.
func (p *producer) close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	p.cl.Close()
	p.big.Close()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

// maxMessageBytes returns a topic's max.message.bytes.
func (a *admin) maxMessageBytes(ctx context.Context, topic string) (int, error) {
	resp, err := a.cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"max.message.bytes"}}}})
	if err != nil {
		return 0, err
	}
	for _, res := range resp.Resources {
		if res.Error != nil {
			return 0, res.Error
		}
		for _, e := range res.ConfigEntries {
			if e.ConfigName == "max.message.bytes" {
				return strconv.Atoi(e.ConfigValue)
			}
		}
	}
	return 0, fmt.Errorf("describe %s: no max.message.bytes", topic)
}

// readAll reads every record of topic up to the end offsets given.
func readAll(ctx context.Context, addr, topic string, ends map[int]int64) ([]*kgo.Record, error) {
	parts := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	for p, end := range ends {
		if end > 0 {
			parts[int32(p)] = kgo.NewOffset().AtStart()
			left[int32(p)] = end
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []*kgo.Record
	var lastErr error
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %d partitions unfinished (last error %v): %w", topic, len(left), lastErr, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { lastErr = err })
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return out, nil
}
