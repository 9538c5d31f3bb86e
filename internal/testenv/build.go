package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// EnvBinary names a profiled binary to test instead of building one.
const EnvBinary = "PROFILED_TEST_BINARY"

const module = "github.com/profiled/profiled/"

var builds struct {
	sync.Mutex
	dir  string
	bins map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// Build builds the module's main package pkg ("cmd/profilectl") once per
// test binary and returns the executable's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	builds.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*build{}
	}
	b := builds.bins[pkg]
	if b == nil {
		b = &build{}
		builds.bins[pkg] = b
	}
	builds.Unlock()
	b.once.Do(func() {
		builds.Lock()
		if builds.dir == "" {
			builds.dir, b.err = os.MkdirTemp("", "profiled-test-bin")
		}
		dir := builds.dir
		builds.Unlock()
		if b.err != nil {
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", b.path, module+pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Profiled returns the profiled binary under test: $PROFILED_TEST_BINARY,
// else cmd/profiled built once.
func Profiled(t testing.TB) string {
	t.Helper()
	if b := os.Getenv(EnvBinary); b != "" {
		return b
	}
	return Build(t, "cmd/profiled")
}

// RemoveBuilds deletes what Build built; a TestMain calls it after m.Run.
func RemoveBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
		builds.dir, builds.bins = "", nil
	}
}
