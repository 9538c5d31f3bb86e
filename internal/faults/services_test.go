package faults_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/testenv"
)

// The suite's own ports: other test runs on this machine use 19092/16379
// and 29092/26379, which the suite never touches.
const (
	defaultKafkaPort = 39092
	firstRedisPort   = 36379
)

// The reaper stops what the suite started when t.Cleanup cannot: the test
// binary is told to stop (SIGINT, SIGTERM) or is about to reach its
// -test.timeout. Children die with the suite anyway (testenv.StartChild); the
// broker, which kafka.sh detaches, needs the reaper.
var reaper struct {
	sync.Mutex
	fns []func()
}

func atExit(fn func()) {
	reaper.Lock()
	defer reaper.Unlock()
	reaper.fns = append(reaper.fns, fn)
}

// watchdog runs the reaper and exits on SIGINT or SIGTERM, or 20 s before
// the test's deadline (with every goroutine's stack, as the timeout would
// print). The returned function ends the watch.
func watchdog(t *testing.T) func() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	var deadline <-chan time.Time
	if d, ok := t.Deadline(); ok && time.Until(d) > time.Minute {
		deadline = time.After(time.Until(d) - 20*time.Second)
	}
	stop := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "faults: %v: stopping what the suite started\n", s)
		case <-deadline:
			buf := make([]byte, 4<<20)
			fmt.Fprintf(os.Stderr, "faults: the test deadline is 20s away: stopping what the suite started\n%s\n", buf[:runtime.Stack(buf, true)])
		case <-stop:
			return
		}
		reaper.Lock()
		for k := len(reaper.fns) - 1; k >= 0; k-- {
			reaper.fns[k]()
		}
		os.Exit(2)
	}()
	return func() { signal.Stop(sig); close(stop) }
}

// broker is the suite's own single-node Kafka, run by deploy/kafka.sh.
type broker struct {
	script   string
	parent   string // temporary directory holding dir
	dir      string // KAFKA_DATA_DIR
	port     int
	ctrlPort int
	addr     string
	restarts int
}

// useBroker starts the suite's broker, stopped when the test ends, and an
// admin client of it; it returns the broker.
func (su *suite) useBroker(t *testing.T) *broker {
	b, err := startBroker(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.stop)
	su.broker, su.admin = b, newAdmin(b.addr)
	return b
}

// startBroker starts the suite's broker. A port can be held for a while as
// the local end of another program's connection (loopback ports above 32767
// are also ephemeral ports), so a busy port moves the broker 100 up, twice.
func startBroker(t *testing.T) (*broker, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	first := defaultKafkaPort
	if p, err := strconv.Atoi(os.Getenv("PROFILED_FAULTS_KAFKA_PORT")); err == nil && p > 0 {
		first = p
	}
	parent, err := os.MkdirTemp("", "profiled-faults-kafka")
	if err != nil {
		return nil, err
	}
	var last error
	for try := 0; try < 3; try++ {
		b := &broker{
			script: filepath.Join(root, "deploy", "kafka.sh"), parent: parent,
			dir: filepath.Join(parent, fmt.Sprintf("kafka-%d", try)), port: first + 100*try, ctrlPort: first + 1 + 100*try,
		}
		b.addr = "127.0.0.1:" + strconv.Itoa(b.port)
		if !testenv.PortFree(b.port) || !testenv.PortFree(b.ctrlPort) {
			last = fmt.Errorf("ports %d/%d are in use", b.port, b.ctrlPort)
			continue
		}
		out, err := b.run("start", 3*time.Minute)
		if err == nil {
			t.Logf("broker on %s, data dir %s", b.addr, b.dir)
			atExit(b.stop)
			return b, nil
		}
		last = fmt.Errorf("kafka.sh start on %d: %v\n%s", b.port, err, testenv.Tail(out, 15))
		_, _ = b.run("stop", time.Minute)
		if !strings.Contains(out, "already in use") {
			break
		}
	}
	os.RemoveAll(parent)
	return nil, last
}

func (b *broker) run(cmd string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", b.script, cmd)
	c.Env = append(testenv.Environ("KAFKA_"),
		"KAFKA_PORT="+strconv.Itoa(b.port), "KAFKA_CONTROLLER_PORT="+strconv.Itoa(b.ctrlPort), "KAFKA_DATA_DIR="+b.dir)
	out, err := c.CombinedOutput()
	return string(out), err
}

// restart stops the broker and starts it again on the same data. While it
// is down, its port may be taken as the local end of some connection (the
// ports above 32767 are ephemeral ones too); then it waits for the port
// and tries again.
func (b *broker) restart(t *testing.T) {
	t.Helper()
	for try := 1; ; try++ {
		out, err := b.run("restart", 3*time.Minute)
		if err == nil {
			b.restarts++
			return
		}
		if try == 3 || !strings.Contains(out, "in use") {
			t.Fatalf("kafka.sh restart: %v\n%s", err, testenv.Tail(out, 30))
		}
		t.Logf("broker port busy at restart %d, waiting for it", try)
		testenv.Poll(time.Minute, 200*time.Millisecond, func() bool { return testenv.PortFree(b.port) && testenv.PortFree(b.ctrlPort) })
	}
}

// stop stops the broker and removes its data.
func (b *broker) stop() {
	_, _ = b.run("stop", time.Minute)
	os.RemoveAll(b.parent)
}

// redisServer is one redis-server process of the suite, with an
// append-only file fsynced on every write, so that a kill -9 loses nothing
// Redis acknowledged.
type redisServer struct {
	bin  string
	port int
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{}
}

var nextRedisPort atomic.Int32

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	r := &redisServer{bin: testenv.RedisServer(), dir: t.TempDir()}
	first := firstRedisPort
	if p, err := strconv.Atoi(os.Getenv("PROFILED_FAULTS_REDIS_PORT")); err == nil && p > 0 {
		first = p // the cluster suite's, away from a fault suite run at the same time
	}
	for try := 0; try < 100; try++ {
		p := first + int(nextRedisPort.Add(1)) - 1
		if testenv.PortFree(p) {
			r.port = p
			break
		}
	}
	if r.port == 0 {
		t.Fatalf("no free port for redis from %d up", first)
	}
	r.launch(t)
	t.Cleanup(r.stop)
	atExit(func() { r.stop(); os.RemoveAll(r.dir) }) // its append-only file is large
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }
func (r *redisServer) url() string  { return "redis://" + r.addr() + "/0" }

// launch runs redis-server on the instance's port and dir. While it was
// down, its port may have been taken as the local end of some connection;
// then it waits for the port and tries again.
func (r *redisServer) launch(t *testing.T) {
	t.Helper()
	for try := 1; ; try++ {
		err := r.try()
		if err == nil {
			return
		}
		log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
		if try == 3 || !strings.Contains(string(log), "in use") {
			t.Fatalf("%v:\n%s", err, testenv.Tail(string(log), 20))
		}
		t.Logf("redis port %d busy, waiting for it", r.port)
		testenv.Poll(time.Minute, 200*time.Millisecond, func() bool { return testenv.PortFree(r.port) })
	}
}

func (r *redisServer) try() error {
	cmd := exec.Command(r.bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(r.dir, "redis.log"))
	done, err := testenv.StartChild(cmd, nil)
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	ok := testenv.Poll(30*time.Second, 50*time.Millisecond, func() bool {
		select {
		case <-done:
			return true
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil // LOADING while the append-only file is read
	})
	select {
	case <-done:
		return fmt.Errorf("redis-server on %d exited at start", r.port)
	default:
	}
	if !ok {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server on %d does not answer PING", r.port)
	}
	return nil
}

// crash kills Redis with SIGKILL and waits for it to be gone.
func (r *redisServer) crash(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("redis-server did not die after SIGKILL")
	}
}

func (r *redisServer) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

func (r *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr(), ReadTimeout: 30 * time.Second, PoolSize: 4})
}

// slowProxy is a loopback TCP proxy in front of Redis that can hold every
// reply back for a while, making Redis answer slower than the client's
// read timeout: the commands run, the replies come too late, and the
// client retries work Redis has already done.
type slowProxy struct {
	target string
	ln     net.Listener
	delay  atomic.Int64 // nanoseconds added before each chunk of replies

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newSlowProxy(t *testing.T, target string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *slowProxy) addr() string { return p.ln.Addr().String() }

func (p *slowProxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *slowProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(s, c); s.Close(); c.Close() }()
		go func() { defer p.wg.Done(); p.replies(c, s); s.Close(); c.Close() }()
	}
}

// replies copies Redis' replies to the client, each chunk after the delay
// in force (sleeping here injects the fault; order is kept).
func (p *slowProxy) replies(c, s net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *slowProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// instance is one profiled process.
type instance struct {
	n       int
	cmd     *exec.Cmd
	http    string
	logPath string
	done    <-chan struct{}
	asked   atomic.Bool // the suite stopped it (SIGKILL or SIGTERM)
}

func (i *instance) running() bool { return !testenv.Closed(i.done) }

// kill9 kills the process without warning and waits for it to be gone.
func (i *instance) kill9(t *testing.T) {
	t.Helper()
	i.asked.Store(true)
	_ = i.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-i.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("instance %d did not die after SIGKILL", i.n)
	}
}

// up waits until the process serves /livez, or has exited, or d has
// passed. A process that gets SIGTERM before main has installed its
// handler (Go's runtime and package initialisation take some 50 ms) dies
// of the signal like any program; the suite stops processes that are up.
func (i *instance) up(d time.Duration) bool {
	c := http.Client{Timeout: time.Second}
	return testenv.Poll(d, 20*time.Millisecond, func() bool {
		if !i.running() {
			return true
		}
		resp, err := c.Get("http://" + i.http + "/livez")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

// term sends SIGTERM, once the process is up, and waits up to limit for
// the exit; it returns the exit code and how long the stop took.
func (i *instance) term(limit time.Duration) (int, time.Duration, error) {
	i.asked.Store(true)
	if !i.up(30 * time.Second) {
		return -1, 0, fmt.Errorf("instance %d does not serve /livez", i.n)
	}
	start := time.Now()
	if err := i.cmd.Process.Signal(syscall.SIGTERM); err != nil && i.running() {
		return -1, 0, err
	}
	select {
	case <-i.done:
		return i.cmd.ProcessState.ExitCode(), time.Since(start), nil
	case <-time.After(limit):
		return -1, time.Since(start), fmt.Errorf("instance %d still running %s after SIGTERM", i.n, limit)
	}
}

// logTail returns the last lines of the instance's log, leaving out the
// one line per dead letter.
func (i *instance) logTail(lines int) string {
	b, _ := os.ReadFile(i.logPath)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, `"message":"dead-lettered"`) {
			keep = append(keep, l)
		}
	}
	return testenv.Tail(strings.Join(keep, "\n"), lines)
}

// fleet runs the profiled processes of one scenario.
type fleet struct {
	bin   string
	env   []string
	dir   string
	group string

	mu  sync.Mutex
	all []*instance
}

func newFleet(t *testing.T, bin, group string, env []string) *fleet {
	f := &fleet{bin: bin, env: env, dir: t.TempDir(), group: group}
	t.Cleanup(func() {
		for _, i := range f.instances() {
			if i.running() {
				i.asked.Store(true)
				_ = i.cmd.Process.Signal(syscall.SIGKILL)
				<-i.done
			}
			if t.Failed() {
				t.Logf("instance %d (pid %d) log tail:\n%s", i.n, i.cmd.Process.Pid, i.logTail(25))
			}
		}
	})
	return f
}

// start runs one more profiled process; extra settings win over the
// fleet's.
func (f *fleet) start(t *testing.T, extra ...string) *instance {
	t.Helper()
	f.mu.Lock()
	n := len(f.all) + 1
	f.mu.Unlock()
	i := &instance{n: n, http: testenv.FreeAddr(t), logPath: filepath.Join(f.dir, fmt.Sprintf("profiled-%d.log", n))}
	logf, err := os.Create(i.logPath)
	if err != nil {
		t.Fatal(err)
	}
	i.cmd = exec.Command(f.bin)
	i.cmd.Env = append(append(append(testenv.Environ("PROFILED_"), f.env...), "PROFILED_HTTP_ADDR="+i.http), extra...)
	i.cmd.Stdout, i.cmd.Stderr = logf, logf
	done, err := testenv.StartChild(i.cmd, func() { logf.Close() })
	if err != nil {
		logf.Close()
		t.Fatalf("start profiled: %v", err)
	}
	i.done = done
	f.mu.Lock()
	f.all = append(f.all, i)
	f.mu.Unlock()
	return i
}

func (f *fleet) instances() []*instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*instance(nil), f.all...)
}

func (f *fleet) running() []*instance {
	var out []*instance
	for _, i := range f.instances() {
		if i.running() {
			out = append(out, i)
		}
	}
	return out
}

// unexpected lists the instances that exited without being asked to.
func (f *fleet) unexpected() []string {
	var out []string
	for _, i := range f.instances() {
		if !i.running() && !i.asked.Load() {
			out = append(out, fmt.Sprintf("instance %d exited by itself (%v):\n%s", i.n, i.cmd.ProcessState, i.logTail(20)))
		}
	}
	return out
}

// stopAll stops every running instance with SIGTERM, in parallel, and
// returns what went wrong: a non-zero exit or an exit later than limit.
func (f *fleet) stopAll(limit time.Duration) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, i := range f.running() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, took, err := i.term(limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case code != 0:
				errs = append(errs, fmt.Errorf("instance %d exited %d after SIGTERM (%s):\n%s", i.n, code, took.Round(time.Millisecond), i.logTail(15)))
			}
		}()
	}
	wg.Wait()
	return errs
}

// leftovers lists the processes still alive that carry this fleet's group
// in their environment: none may outlive a scenario.
func (f *fleet) leftovers() []int {
	marker := []byte("PROFILED_KAFKA_GROUP=" + f.group + "\x00")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or not ours to read
		}
		if strings.Contains(string(env), string(marker)) {
			// a zombie would show an empty environ; a live process counts
			pids = append(pids, pid)
		}
	}
	return pids
}
