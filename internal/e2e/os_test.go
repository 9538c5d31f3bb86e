package e2e_test

import (
	"context"
	"os"

	"github.com/segmentio/kafka-go"
)

var osStat = os.Stat

func deleteTopic(ctx context.Context, e *env, topic string) error {
	cl := &kafka.Client{Addr: kafka.TCP(e.brokers...)}
	resp, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		return err
	}
	return resp.Errors[topic]
}
