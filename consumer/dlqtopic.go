package consumer

import (
	"context"
	"strconv"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

// dlqHeaderRoom is what a dead letter may carry beyond the largest input
// record: the headers profiled adds (contract section 7).
const dlqHeaderRoom = 64 << 10

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

// createDLQTopic creates the dead-letter topic, one partition, with room
// for any record the input topics accept; it returns that room.
func createDLQTopic(ctx context.Context, conn kafkaconn.Config, topic string, inputs []string) (int, error) {
	largest, err := conn.MaxMessageBytes(ctx, inputs)
	if err != nil {
		return 0, err
	}
	room := dlqMaxMessageBytes(map[string]int{"inputs": largest})
	return room, conn.CreateTopicWithConfigs(ctx, topic, 1, map[string]string{kafkaconn.TopicMaxMessageBytes: strconv.Itoa(room)})
}
