package main

import (
	"context"
	"math/rand"
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

// redisMemory estimates the memory per profile of the keys under prefix:
// every key is counted by kind (SCAN), MEMORY USAGE is read for a random
// sample of up to perKind keys of each kind, and each kind's mean times
// its count, divided by the number of profile hashes, is its share.
func redisMemory(ctx context.Context, rdb *redis.Client, prefix string, perKind int) (memSplit, error) {
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
	rng := rand.New(rand.NewSource(1))
	total := map[string]float64{}
	for kind, ks := range keys {
		rng.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
		sample := ks[:min(perKind, len(ks))]
		p := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(sample))
		for i, k := range sample {
			cmds[i] = p.MemoryUsage(ctx, k)
		}
		if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
			return memSplit{}, err
		}
		var sum float64
		n := 0
		for _, c := range cmds {
			if v, err := c.Result(); err == nil {
				sum += float64(v)
				n++
			}
		}
		if n > 0 {
			total[kind] = sum / float64(n) * float64(len(ks))
		}
	}
	per := func(kind string) float64 { return total[kind] / float64(m.Profiles) }
	m.Profile, m.Bookkeeping, m.Links = per("profile"), per("bookkeeping"), per("links")
	return m, nil
}
