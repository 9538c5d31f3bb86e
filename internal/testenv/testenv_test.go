package testenv

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLocate checks the one place that picks the real services, with no
// Docker engine (TestContainersPath covers the containers).
func TestLocate(t *testing.T) {
	reachable := dockerReachable
	dockerReachable = func() bool { return false }
	defer func() { dockerReachable = reachable }()
	for _, c := range []struct {
		mode, brokers, url string
		want               []string // nil: none
		err                string
	}{
		{"", "", "", nil, ""},
		{"auto", "b:1", "", nil, ""},
		{"auto", "b:1,b:2", "redis://r:1/0", []string{"b:1", "b:2"}, ""},
		{"", "b:1", "redis://r:1/0", []string{"b:1"}, ""},
		{"scripts", "b:1", "redis://r:1/0", []string{"b:1"}, ""},
		{"scripts", "", "", nil, "deploy/testenv.sh"},
		{"docker", "", "", nil, "want auto, scripts or containers"},
	} {
		t.Run(fmt.Sprintf("%s/%s/%s", c.mode, c.brokers, c.url), func(t *testing.T) {
			t.Setenv(EnvKafkaBrokers, c.brokers)
			t.Setenv(EnvRedisURL, c.url)
			brokers, url, err := locate(c.mode)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil || fmt.Sprint(brokers) != fmt.Sprint(c.want) || (c.want != nil && url != c.url) {
				t.Fatalf("%v %q %v, want %v %q", brokers, url, err, c.want, c.url)
			}
		})
	}
}

func TestProcess(t *testing.T) {
	p := Start(t, nil, "/bin/sh", "-c", "echo starting; echo ready >&2; exec sleep 60")
	p.WaitOutput(t, 10*time.Second, "ready")
	if !p.Running() || !strings.Contains(p.Out.String(), "starting\n") {
		t.Fatalf("running %v, output %q", p.Running(), p.Out.String())
	}
	p.Kill()
	if p.Running() {
		t.Fatal("running after Kill")
	}

	q := Start(t, nil, "/bin/sh", "-c", "exit 3")
	if code := q.Wait(t, 10*time.Second); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
}

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("%d bytes, want 800", n)
	}
}

func TestPollDeadline(t *testing.T) {
	n := 0
	if !Poll(time.Second, time.Millisecond, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("Poll stopped after %d calls", n)
	}
	start := time.Now()
	if Poll(50*time.Millisecond, 10*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll of a false condition returned true")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Fatalf("Poll gave up after %s, want just after 50ms", d)
	}
}

func TestHelpers(t *testing.T) {
	if got := Tail("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
	t.Setenv("PROFILED_X_TEST", "1")
	for _, kv := range Environ("PROFILED_") {
		if strings.HasPrefix(kv, "PROFILED_") {
			t.Errorf("Environ kept %s", kv)
		}
	}
	a, b := Unique(t, "topic"), Unique(t, "topic")
	if a == b || !strings.HasPrefix(a, "topic-testhelpers-") {
		t.Errorf("Unique: %q, %q", a, b)
	}
	if addr := FreeAddr(t); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("FreeAddr = %q", addr)
	}
}
