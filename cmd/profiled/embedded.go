package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/profiled/profiled/internal/feed"
	"github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/profile"
)

// embedded is the zero set-up quick start: an in-process Kafka-protocol
// broker and Redis, used only when PROFILED_EMBEDDED=true and only for what
// is not configured. Nothing in it is for production.
type embedded struct {
	kafka *kfake.Cluster
	redis *miniredis.Miniredis
	log   zerolog.Logger
}

func startEmbedded(_ context.Context, cfg *config, log zerolog.Logger) (*embedded, error) {
	e := &embedded{log: log}
	if len(cfg.Kafka.Brokers) == 0 {
		cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(9092),
			kfake.SeedTopics(3, cfg.Consumer.Topics...), kfake.SeedTopics(1, cfg.Consumer.DLQTopic))
		if err != nil {
			// 9092 is taken: any free port will do.
			cl, err = kfake.NewCluster(kfake.NumBrokers(1),
				kfake.SeedTopics(3, cfg.Consumer.Topics...), kfake.SeedTopics(1, cfg.Consumer.DLQTopic))
			if err != nil {
				return nil, fmt.Errorf("kafka: %w", err)
			}
		}
		e.kafka = cl
		cfg.Kafka.Brokers = cl.ListenAddrs()
		log.Warn().Strs("brokers", cfg.Kafka.Brokers).Msg("EMBEDDED in-process Kafka broker: for the quick start only, data lives in memory")
	}
	if cfg.Redis.URL == "" && len(cfg.Redis.ClusterAddrs) == 0 && len(cfg.Redis.SentinelAddrs) == 0 {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:6379"); err != nil {
			mr = miniredis.NewMiniRedis()
			if err := mr.Start(); err != nil {
				e.Close()
				return nil, fmt.Errorf("redis: %w", err)
			}
		}
		e.redis = mr
		cfg.Redis.URL = "redis://" + mr.Addr() + "/0"
		log.Warn().Str("redis", cfg.Redis.URL).Msg("EMBEDDED in-process Redis: for the quick start only, data lives in memory")
	}
	return e, nil
}

// Close stops what startEmbedded started.
func (e *embedded) Close() {
	if e.kafka != nil {
		e.kafka.Close()
	}
	if e.redis != nil {
		e.redis.Close()
	}
}

// feedAndReport produces the sample events, waits until the group has
// committed all of them, and prints the profiles built.
func (e *embedded) feedAndReport(ctx context.Context, cfg *config, rdb redis.UniversalClient, out io.Writer) {
	if cfg.EmbeddedSample == "" {
		return
	}
	f, err := os.Open(cfg.EmbeddedSample)
	if err != nil {
		e.log.Error().Err(err).Msg("sample events")
		return
	}
	defer f.Close()
	w := feed.NewWriter(cfg.Kafka.Brokers, cfg.Consumer.Topics[0], nil)
	n, err := feed.Lines(ctx, w, f)
	_ = w.Close()
	if err != nil {
		e.log.Error().Err(err).Msg("producing sample events")
		return
	}
	e.log.Info().Int("records", n).Str("topic", cfg.Consumer.Topics[0]).Msg("produced the sample events")

	conn := kafka.Config{Brokers: cfg.Kafka.Brokers}
	deadline := time.Now().Add(60 * time.Second)
	for {
		offs, err := conn.GroupOffsets(ctx, cfg.Consumer.Group, cfg.Consumer.Topics[0])
		if err == nil && kafka.CaughtUp(offs) {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			e.log.Warn().Msg("sample events not all processed in 60s")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := PrintProfiles(ctx, rdb, cfg.Sink.KeyPrefix, out); err != nil {
		e.log.Error().Err(err).Msg("reading profiles")
	}
	fmt.Fprintln(out, "\nprofiled keeps running: /metrics on", cfg.HTTPAddr, "- press Ctrl-C to stop.")
}

// PrintProfiles writes every profile under prefix, one block each.
func PrintProfiles(ctx context.Context, rdb redis.UniversalClient, prefix string, out io.Writer) error {
	var keys []string
	iter := rdb.Scan(ctx, 0, prefix+"profile:{*", 1000).Iterator()
	for iter.Next(ctx) {
		if k := iter.Val(); strings.HasSuffix(k, "}") {
			keys = append(keys, k)
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	sort.Strings(keys)
	fmt.Fprintf(out, "\n%d profiles built from the sample events:\n", len(keys))
	order := []string{profile.FieldCustomerID, profile.FieldAnonymousID, profile.FieldEmail, profile.FieldPhone,
		profile.FieldBirthday, profile.FieldCustomerType, profile.FieldCity, profile.FieldCountry,
		profile.FieldLatitude, profile.FieldLongitude, profile.FieldTimezone,
		profile.FieldFirstSeen, profile.FieldFirstSeenChannel, profile.FieldLastSeen, profile.FieldLastSeenChannel,
		profile.FieldAppLaunches, profile.FieldWebVisits, profile.FieldCreatedAt, profile.FieldUpdatedAt}
	for _, k := range keys {
		h, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%s\n", k)
		seen := map[string]bool{}
		for _, f := range order {
			if v, ok := h[f]; ok {
				fmt.Fprintf(out, "  %-20s %s\n", f, v)
				seen[f] = true
			}
		}
		var rest []string
		for f := range h {
			if !seen[f] {
				rest = append(rest, f)
			}
		}
		sort.Strings(rest)
		for _, f := range rest {
			fmt.Fprintf(out, "  %-20s %s\n", f, h[f])
		}
	}
	return nil
}
