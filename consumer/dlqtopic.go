package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// dlqHeaderRoom is what a dead letter may carry beyond the largest input
// record: the headers profiled adds (contract section 7).
const dlqHeaderRoom = 64 << 10

// configMaxMessageBytes is the topic setting that bounds a record batch.
const configMaxMessageBytes = "max.message.bytes"

// dlqMaxMessageBytes is the max.message.bytes of a dead-letter topic
// profiled creates: the largest limit of the input topics plus room for
// the headers, so any record the input topics accept fits as a dead letter.
func dlqMaxMessageBytes(inputs map[string]int) int {
	largest := 0
	for _, n := range inputs {
		largest = max(largest, n)
	}
	return largest + dlqHeaderRoom
}

// topicMaxMessageBytes returns each topic's effective max.message.bytes
// (its own setting, else the broker's default).
func topicMaxMessageBytes(ctx context.Context, conn Conn, topics []string) (map[string]int, error) {
	cl, err := adminOf(conn)
	if err != nil {
		return nil, err
	}
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: t, ConfigNames: []string{configMaxMessageBytes}})
	}
	resp, err := cl.DescribeConfigs(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("describe configs: %w", err)
	}
	out := make(map[string]int, len(topics))
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("describe configs %s: %w", r.ResourceName, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName != configMaxMessageBytes {
				continue
			}
			n, err := strconv.Atoi(e.ConfigValue)
			if err != nil {
				return nil, fmt.Errorf("%s of %s: %q: %w", configMaxMessageBytes, r.ResourceName, e.ConfigValue, err)
			}
			out[r.ResourceName] = n
		}
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("%s of %s: not reported", configMaxMessageBytes, t)
		}
	}
	return out, nil
}

// createDLQTopic creates the dead-letter topic, one partition with the
// broker's default replication, room for maxBytes per record batch.
func createDLQTopic(ctx context.Context, conn Conn, topic string, maxBytes int) error {
	cl, err := adminOf(conn)
	if err != nil {
		return err
	}
	resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: -1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: configMaxMessageBytes, ConfigValue: strconv.Itoa(maxBytes)}},
	}}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

func adminOf(conn Conn) (*kafka.Client, error) {
	transport, err := conn.Transport()
	if err != nil {
		return nil, err
	}
	return &kafka.Client{Addr: kafka.TCP(conn.Brokers...), Transport: transport}, nil
}
