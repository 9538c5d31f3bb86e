package main

// The script's cost in instructions (BENCH_ONLY=script, make
// bench-script): the sink-only replay of the workload against a Redis
// that runs under valgrind's callgrind, which counts the instructions
// Redis executes in each of its functions. A count does not depend on
// what else the machine runs, so a change to apply.lua can be compared
// with the one before it exactly, where CPU seconds on a shared 2-core
// machine wander by 10% from run to run. It leaves out what an
// instruction costs (cache misses, the allocator's page faults).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// scriptCost replays topic's records, folded in batches of the batch size
// as sink only folds them, into a fresh Redis under callgrind, and logs
// the instructions per EVALSHA and where they go.
func scriptCost(ctx context.Context, s settings, topic, stamp string) error {
	for _, tool := range []string{"valgrind", "callgrind_annotate", "redis-server"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed (Debian: apt-get install valgrind redis-server): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "profilebench-script-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(addr, ":")
	out := filepath.Join(dir, "callgrind.out")
	cmd := exec.Command("valgrind", "--tool=callgrind", "--callgrind-out-file="+out,
		"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	deadline := time.Now().Add(60 * time.Second) // valgrind starts Redis some 50 times slower
	for rdb.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			return errors.New("redis-server under valgrind did not answer within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("script: sink only into a Redis under callgrind (%s); instructions are counted, not timed", addr)
	// the sink's clock starts at a multiple of 16 ms and moves 1 ms a
	// batch: the script prunes dedupe sets in batches whose time is a
	// multiple of 16 ms, which the wall clock would make a matter of luck
	ms := int64(1_796_000_000_000)
	s.sinkClock = func() time.Time { ms++; return time.UnixMilli(ms - 1) }
	sr, err := sinkOnly(ctx, s, rdb, topic, "script-"+stamp+":", nil)
	if err != nil {
		return err
	}
	// SHUTDOWN closes the connection as the server exits: its error is the
	// expected one
	_ = rdb.Shutdown(ctx).Err()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return errors.New("redis-server under valgrind did not exit within 60s of SHUTDOWN")
	}
	ann, err := exec.CommandContext(ctx, "callgrind_annotate", "--inclusive=yes", "--tree=caller", "--threshold=100", out).Output()
	if err != nil {
		return fmt.Errorf("callgrind_annotate: %w", err)
	}
	cg := parseCallgrind(ann)
	c := cg.incl
	calls := float64(sr.scriptCalls)
	if calls == 0 || c["evalShaCommand"] == 0 {
		return errors.New("no EVALSHA was counted")
	}
	per := func(fn string) float64 { return float64(c[fn]) / calls }
	total := per("evalShaCommand")
	pct := func(v float64) string { return fmt.Sprintf("%.0f (%.1f%%)", v, 100*v/total) }
	logf("script: %d EVALSHA calls (%.2f per record), %.0f instructions each inside EVALSHA; reading the commands from the client (processMultibulkBuffer): %.0f more per call",
		sr.scriptCalls, calls/float64(s.events), total, per("processMultibulkBuffer"))
	logf("script: around the script (KEYS and ARGV made into Lua strings and tables, the reply, Lua garbage collection steps): %s", pct(total-per("lua_pcall")))
	// redis.call is the function that calls scriptCall (Redis's
	// luaRedisGenericCommand, static, so often without a symbol): what it
	// spends outside scriptCall turns Lua values into a command and the
	// reply back into Lua values
	rc := per(cg.caller["scriptCall"])
	logf("script: the script's own Lua: %s", pct(per("lua_pcall")-rc))
	logf("script: redis.call's conversions of arguments and replies: %s", pct(rc-per("scriptCall")))
	logf("script: the commands it calls (scriptCall): %s", pct(per("scriptCall")))
	var cmds []string
	for fn := range c {
		if strings.HasSuffix(fn, "Command") && !strings.Contains(strings.ToLower(fn), "generic") && fn != "evalShaCommand" &&
			fn != "processCommand" && fn != "lookupCommand" && !strings.HasPrefix(fn, "lua") &&
			!strings.HasSuffix(cg.caller[fn], "Command") && // a command's helper (ZPOPMAX's zpopMinMaxCommand)
			float64(c[fn]) >= 0.002*total*calls {
			cmds = append(cmds, fn)
		}
	}
	sort.Slice(cmds, func(i, j int) bool { return c[cmds[i]] > c[cmds[j]] })
	var parts []string
	for _, fn := range cmds {
		parts = append(parts, fmt.Sprintf("%s %.0f", strings.ToUpper(strings.TrimSuffix(fn, "Command")), per(fn)))
	}
	logf("script: of which, per call: %s", strings.Join(parts, ", "))
	return nil
}

// callgrindLine is a line of callgrind_annotate's caller tree
// (--inclusive=yes --tree=caller): a function's inclusive count, marked
// "*", after a line for each of its callers, marked "<", with what the
// calls from that caller cost:
//
//	545,639,830 ( 9.13%)  < ???:0x0000000000142a90 (56,039x) [/usr/bin/redis-server]
//	545,639,830 ( 9.13%)  *  ???:scriptCall [/usr/bin/redis-server]
//
// A function without a symbol is named by its address.
var callgrindLine = regexp.MustCompile(`^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+([<*>])\s+\S*?:([A-Za-z_0-9][A-Za-z0-9_]*)\s`)

// callgrindCounts is what parseCallgrind read: each function's inclusive
// instruction count, and its caller that spent the most in it.
type callgrindCounts struct {
	incl   map[string]int64
	caller map[string]string
}

// parseCallgrind reads callgrind_annotate's caller tree. A recursive
// function's inner frames (name'2) are left out.
func parseCallgrind(out []byte) callgrindCounts {
	c := callgrindCounts{incl: map[string]int64{}, caller: map[string]string{}}
	var top string
	var topN int64 = -1
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := callgrindLine.FindStringSubmatch(sc.Text())
		if m == nil {
			top, topN = "", -1
			continue
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
		if err != nil {
			continue
		}
		switch m[2] {
		case "<":
			if n > topN {
				top, topN = m[3], n
			}
		case "*":
			if _, seen := c.incl[m[3]]; !seen {
				c.incl[m[3]] = n
				if top != "" {
					c.caller[m[3]] = top
				}
			}
			top, topN = "", -1
		}
	}
	return c
}
