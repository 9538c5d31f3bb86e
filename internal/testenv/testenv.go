// Package testenv is what every test package of profiled shares: the
// Kafka and Redis a test runs against (real servers or in-process ones),
// free ports, the built binaries, a process runner, a synchronized buffer
// and polling with a deadline. Tests never sleep to wait: they poll a
// condition until a deadline.
//
// Only tests import it.
package testenv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every 20 ms until it holds, and fails the test
// when d passes first. what names the condition in the failure.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, 20*time.Millisecond, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// Poll checks cond every interval until it holds (true) or d has passed
// (false). For code that reports a timeout in its own way.
func Poll(d, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// PortFree reports whether the loopback port can be listened on now.
func PortFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// Unique returns a name for a topic, group or key prefix that no other
// test (or earlier run of this one) uses: what, the test's name and a
// random number.
func Unique(t testing.TB, what string) string {
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	return fmt.Sprintf("%s-%s-%d", what, strings.ToLower(name), rand.IntN(1e9))
}

// Environ returns the process environment without the variables whose
// names start with any of prefixes, so that a developer's PROFILED_*
// settings cannot leak into what a test starts.
func Environ(without ...string) []string {
	var out []string
outer:
	for _, kv := range os.Environ() {
		for _, p := range without {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Buffer is an io.Writer that a process or logger may write while the
// test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WantError reports on t unless err is what want asks for: want "" asks
// for no error, anything else for an error whose text contains want. what
// names the case in the report. It serves the table tests of the rules
// that accept a setting or name the one to fix.
func WantError(t testing.TB, what any, err error, want string) {
	t.Helper()
	wantError(t, what, err, want, strings.Contains)
}

// WantErrorPrefix is WantError for an error whose text begins with want,
// such as the path of the setting at fault.
func WantErrorPrefix(t testing.TB, what any, err error, want string) {
	t.Helper()
	wantError(t, what, err, want, strings.HasPrefix)
}

func wantError(t testing.TB, what any, err error, want string, match func(s, part string) bool) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%v: %v, want no error", what, err)
	case want != "" && (err == nil || !match(err.Error(), want)):
		t.Errorf("%v: %v, want an error with %q", what, err, want)
	}
}
