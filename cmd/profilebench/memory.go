package main

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// memSplit is Redis memory per profile, by kind of key, in bytes.
type memSplit struct {
	Profiles    int     `json:"profiles"`
	Profile     float64 `json:"profile_hash_bytes"`
	Bookkeeping float64 `json:"bookkeeping_bytes"` // :m (meta) and :d (dedupe)
	Links       float64 `json:"links_bytes"`       // :links, :link (and a transient :snap)
}

// Total is every kind together.
func (m memSplit) Total() float64 { return m.Profile + m.Bookkeeping + m.Links }

// keyKind sorts a profiled key (sink.Key and the keys beside it) into
// "profile", "bookkeeping" or "links"; "" for none of them.
func keyKind(key string) string {
	i := strings.LastIndexByte(key, '}')
	if i < 0 {
		return ""
	}
	switch key[i+1:] {
	case "":
		return "profile"
	case ":m", ":d":
		return "bookkeeping"
	case ":link", ":links", ":snap":
		return "links"
	}
	return ""
}

// redisMemory measures the memory per profile of the keys under prefix:
// every key is sorted by kind (SCAN) and its MEMORY USAGE read with
// SAMPLES 0, every element counted (the default samples five elements of
// a set and scales up; and a sample of keys missed or caught the few very
// large dedupe sets of the busiest profiles, so that the same workload gave
// 729 to 1,640 bytes of bookkeeping per profile from run to run); each
// kind's sum over the number of profile hashes is its share.
func redisMemory(ctx context.Context, rdb *redis.Client, prefix string) (memSplit, error) {
	keys := map[string][]string{}
	it := rdb.Scan(ctx, 0, prefix+"*", 5000).Iterator()
	for it.Next(ctx) {
		if k := keyKind(it.Val()); k != "" {
			keys[k] = append(keys[k], it.Val())
		}
	}
	if err := it.Err(); err != nil {
		return memSplit{}, err
	}
	m := memSplit{Profiles: len(keys["profile"])}
	if m.Profiles == 0 {
		return m, nil
	}
	total := map[string]float64{}
	for kind, ks := range keys {
		for i := 0; i < len(ks); i += 5000 {
			part := ks[i:min(i+5000, len(ks))]
			p := rdb.Pipeline()
			cmds := make([]*redis.IntCmd, len(part))
			for j, k := range part {
				cmds[j] = p.MemoryUsage(ctx, k, 0)
			}
			if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
				return memSplit{}, err
			}
			for _, c := range cmds {
				if v, err := c.Result(); err == nil { // a key gone since the SCAN counts nothing
					total[kind] += float64(v)
				}
			}
		}
	}
	per := func(kind string) float64 { return total[kind] / float64(m.Profiles) }
	m.Profile, m.Bookkeeping, m.Links = per("profile"), per("bookkeeping"), per("links")
	return m, nil
}
