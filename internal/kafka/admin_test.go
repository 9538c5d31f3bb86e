package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/internal/testenv"
)

// TestAdminInProcess runs the admin calls against the in-process broker,
// so they are checked under -short too.
func TestAdminInProcess(t *testing.T) {
	testAdmin(t, testenv.InProcess(t, map[string]int{"events": 3}))
}

// TestAdminRealBroker runs them against a real Kafka broker, whose answers
// (topic ids, configs a topic inherits from the broker) are what count.
func TestAdminRealBroker(t *testing.T) {
	testAdmin(t, testenv.Real(t))
}

func testAdmin(t *testing.T, s *testenv.Services) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.Kafka
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}

	plain := s.Topic(t, 2)
	limited := testenv.Unique(t, "limited")
	s.CreateTopic(t, limited, 1, map[string]string{kafka.TopicMaxMessageBytes: "300000"})
	large := testenv.Unique(t, "large")
	s.CreateTopic(t, large, 1, map[string]string{kafka.TopicMaxMessageBytes: "5000000"})

	infos, err := c.DescribeTopics(ctx, []string{plain, limited})
	if err != nil {
		t.Fatal(err)
	}
	if infos[plain].Partitions != 2 || infos[limited].Partitions != 1 || infos[plain].Name != plain {
		t.Errorf("describe: %+v", infos)
	}
	if infos[plain].ID == "" || infos[plain].ID == infos[limited].ID {
		t.Errorf("topic ids %q and %q: want two different ones", infos[plain].ID, infos[limited].ID)
	}
	if _, err := c.DescribeTopics(ctx, []string{plain, "no-such-topic-" + strconv.Itoa(time.Now().Nanosecond())}); !errors.Is(err, kafka.ErrUnknownTopic) {
		t.Errorf("describe a missing topic: %v, want ErrUnknownTopic", err)
	}
	// creating a topic again is not an error, and leaves it as it was
	if err := c.CreateTopicWithConfigs(ctx, limited, 4, map[string]string{kafka.TopicMaxMessageBytes: "1000"}); err != nil {
		t.Errorf("create again: %v", err)
	}

	inherited, err := c.MaxMessageBytes(ctx, []string{plain})
	if err != nil {
		t.Fatal(err)
	}
	if inherited <= 0 {
		t.Errorf("max.message.bytes of a topic without its own: %d, want the broker's default", inherited)
	}
	for _, c2 := range []struct {
		topics []string
		want   int
	}{
		{[]string{limited}, 300000},
		{[]string{large}, 5000000},
		{[]string{limited, large}, 5000000},
		{[]string{plain, limited}, max(inherited, 300000)},
		{[]string{plain, limited, large}, max(inherited, 5000000)},
	} {
		got, err := c.MaxMessageBytes(ctx, c2.topics)
		if err != nil || got != c2.want {
			t.Errorf("MaxMessageBytes(%v) = %d, %v; want %d", c2.topics, got, err, c2.want)
		}
	}
	if _, err := c.MaxMessageBytes(ctx, []string{"no-such-topic-x"}); !errors.Is(err, kafka.ErrUnknownTopic) {
		t.Errorf("MaxMessageBytes of a missing topic: %v, want ErrUnknownTopic", err)
	}

	// a broker just started may not have a group coordinator yet
	var offs map[int]kafka.PartitionOffsets
	testenv.Eventually(t, 30*time.Second, "group offsets", func() bool {
		offs, err = c.GroupOffsets(ctx, "no-such-group", plain)
		return err == nil
	})
	want := map[int]kafka.PartitionOffsets{0: {Committed: -1, End: 0}, 1: {Committed: -1, End: 0}}
	if len(offs) != 2 || offs[0] != want[0] || offs[1] != want[1] || !kafka.CaughtUp(offs) {
		t.Errorf("offsets of an empty topic and no group: %v", offs)
	}
}
