package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

// usersRun is one pipeline run's cost at one number of distinct users.
type usersRun struct {
	Users       int      `json:"users"`
	Events      int      `json:"events"`
	Rate        float64  `json:"pipeline_events_per_sec"`
	CPUProfiled float64  `json:"cpu_s_per_million_profiled"`
	CPURedis    float64  `json:"cpu_s_per_million_redis"`
	CPUBroker   float64  `json:"cpu_s_per_million_broker"`
	CPUTotal    float64  `json:"cpu_s_per_million_total"`
	Memory      memSplit `json:"redis_memory_per_profile"`
}

// setCPU sets the CPU-seconds per million events from a pipeline run's
// split (pipeline in main.go).
func (u *usersRun) setCPU(split map[string]float64, events int) {
	per := func(x float64) float64 { return x / float64(events) * 1e6 }
	u.CPUProfiled, u.CPURedis, u.CPUBroker = per(split["profiled"]), per(split["redis"]), per(split["kafka"])
	u.CPUTotal = u.CPUProfiled + u.CPURedis + u.CPUBroker
}

func (m memSplit) String() string {
	return fmt.Sprintf("%d profiles; bytes per profile: hash %.0f, bookkeeping %.0f, links %.0f, in all %.0f",
		m.Profiles, m.Profile, m.Bookkeeping, m.Links, m.Total())
}

// usersPipeline is the pipeline measure again over largeUsers distinct
// users (less folding per batch: fewer of a user's events share one),
// on largeEvents records of a topic of its own, with Redis memory per
// profile measured on what it wrote; its keys are removed afterwards.
func usersPipeline(ctx context.Context, s settings, conn kafkaconn.Config, rdb *redis.Client, stamp string) (usersRun, error) {
	ls := s
	ls.users, ls.events = s.largeUsers, s.largeEvents
	logf("users: generating %d events over %d users", ls.events, ls.users)
	values := workload{events: ls.events, users: ls.users, seed: 2, base: time.Now().Add(-2 * time.Hour)}.generate()
	tag := strconv.Itoa(ls.users)
	topic := "bench-users" + tag + "-" + stamp
	if err := conn.CreateTopic(ctx, topic, s.partitions); err != nil {
		return usersRun{}, err
	}
	if err := produce(ctx, s.brokers, topic, values); err != nil {
		return usersRun{}, err
	}
	prefix := "users" + tag + "-" + stamp + ":"
	pr, err := pipeline(ctx, ls, conn, topic, prefix, "bench-users"+tag+"-"+stamp)
	if err != nil {
		return usersRun{}, err
	}
	u := usersRun{Users: ls.users, Events: ls.events, Rate: pr.rate}
	u.setCPU(pr.split, ls.events)
	if u.Memory, err = redisMemory(ctx, rdb, prefix); err != nil {
		return u, err
	}
	logf("users: %d users, %d records: %.0f events/s; CPU-s per million: profiled %.1f, Redis %.1f, broker %.1f; memory: %s",
		u.Users, u.Events, u.Rate, u.CPUProfiled, u.CPURedis, u.CPUBroker, u.Memory)
	if _, err := dropPrefix(ctx, rdb, prefix); err != nil {
		return u, err
	}
	return u, nil
}

// warmPipeline runs profiled over the whole topic once, untimed, in a
// group and key space of its own, so that the measured pipeline finds the
// broker's fetch, commit, group and produce paths compiled (a freshly
// started broker's JIT is no cost of a long-running one), and returns what
// the warm-up cost.
func warmPipeline(ctx context.Context, s settings, conn kafkaconn.Config, rdb *redis.Client, stamp, topic string) (usersRun, error) {
	prefix := "warm-" + stamp + ":"
	pr, err := pipeline(ctx, s, conn, topic, prefix, "bench-warmpipe-"+stamp)
	if err != nil {
		return usersRun{}, err
	}
	u := usersRun{Users: s.users, Events: s.events, Rate: pr.rate}
	u.setCPU(pr.split, s.events)
	logf("warm-up pipeline, untimed: %.0f events/s; CPU-s per million: profiled %.1f, Redis %.1f, broker %.1f",
		u.Rate, u.CPUProfiled, u.CPURedis, u.CPUBroker)
	_, err = dropPrefix(ctx, rdb, prefix)
	return u, err
}
