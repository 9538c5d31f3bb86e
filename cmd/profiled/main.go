// Command profiled turns a stream of user events from Kafka into user
// profiles in Redis. See the README for the contract and configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// Set by -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = "unknown"
)

func main() {
	// The pipeline allocates a little per record over a live heap of
	// 35-55 MiB at the default batch bound (20000), so the default GOGC=100
	// collects often under load. 125 collects a fifth less often for about
	// 10 MiB more (200 cost another 48 MiB of peak RSS; see README).
	// An operator's GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(125)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "profiled:", err)
		os.Exit(1)
	}
}

func newLogger(c *config, out io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(c.LogLevel)
	var w io.Writer = out
	if c.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("service", "profiled").Logger()
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	// --version alone prints the build and exits: what an image's smoke
	// test and an operator asking "which build is this?" run.
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintf(stdout, "profiled %s (revision %s, %s)\n", version, revision, runtime.Version())
		return nil
	}
	cfg, err := loadConfig(args, environ, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)
	for _, name := range unknownVariables(environ) {
		log.Warn().Str("variable", name).Msg("unknown PROFILED_* variable: no setting has this name (a typo?); it is ignored. profiled --help lists the settings")
	}

	var emb *embedded
	if cfg.Embedded {
		emb, err = startEmbedded(ctx, cfg, log)
		if err != nil {
			return fmt.Errorf("embedded: %w", err)
		}
		defer emb.Close()
	}
	eff := cfg.redacted()
	ev := log.Info().Str("version", version).Str("revision", revision)
	for _, k := range sortedKeys(eff) {
		ev = ev.Str(k, eff[k])
	}
	ev.Msg("starting with this configuration")

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "profiled_build_info", Help: "Build information; the value is always 1.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(version, revision, runtime.Version()).Set(1)
	reg.MustRegister(buildInfo)

	dec, err := profile.NewDecoder(cfg.Profile)
	if err != nil {
		return nameSetting("profile", err)
	}
	rdb, err := cfg.Redis.client()
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := sink.New(rdb, cfg.Sink, reg)

	// the embedded broker may have supplied the brokers since validation
	conn, err := cfg.Kafka.conn()
	if err != nil {
		return err
	}
	cc := cfg.Consumer
	cc.Conn = conn
	cc.DrainTimeout = cfg.ShutdownTimeout - 2*time.Second
	if cc.DrainTimeout < time.Second {
		cc.DrainTimeout = cfg.ShutdownTimeout / 2
	}
	onBatch, closeBatchLog, err := batchLog(environment(environ)[batchLogVar])
	if err != nil {
		return err
	}
	defer closeBatchLog()
	cc.BeforeCommit = beforeCommitHook(environment(environ))
	cc.OnBatch = onBatch
	cons, err := consumer.New(cc, log, reg, dec, store)
	if err != nil {
		return nameSetting("consumer", err)
	}

	st := &startState{}
	srv, ln, err := serveHTTP(cfg, reg, cons, st)
	if err != nil {
		return err
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /livez and /readyz")

	ownRedis := emb != nil && emb.redis != nil
	if err := waitForRedis(ctx, rdb, store, ownRedis, cfg, st, log); err != nil {
		return stoppedAtStart(log, err)
	}
	// the read API needs only Redis: it serves while Kafka is waited for
	stopAPI, err := startAPI(cfg, rdb, log)
	if err != nil {
		return err
	}
	defer stopAPI()
	if err := waitForKafka(ctx, cons, st, log); err != nil {
		return stoppedAtStart(log, err)
	}
	if ctx.Err() != nil {
		return stoppedAtStart(log, ctx.Err())
	}

	if emb != nil {
		go emb.feedAndReport(ctx, cfg, rdb, stdout)
	}

	st.run()
	runErr := make(chan error, 1)
	go func() { runErr <- cons.Run(ctx) }()

	select {
	case err = <-runErr:
	case <-ctx.Done():
		log.Info().Dur("grace", cfg.ShutdownTimeout).Msg("stopping: finishing the work in flight")
		select {
		case err = <-runErr:
		case <-time.After(cfg.ShutdownTimeout):
			err = fmt.Errorf("shutdown: work in flight not finished within %s; it will be delivered again", cfg.ShutdownTimeout)
		}
	}
	if err != nil {
		if named := kafkaSettingError(err); named != nil {
			err = named
		}
		log.Error().Err(err).Msg("stopped")
		return err
	}
	log.Info().Msg("stopped cleanly")
	return nil
}

// stoppedAtStart logs why profiled stops before it joined the group and
// returns err; a start cancelled by SIGTERM is no error.
func stoppedAtStart(log zerolog.Logger, err error) error {
	if errors.Is(err, context.Canceled) {
		log.Info().Msg("stopped cleanly before joining the group")
		return nil
	}
	log.Error().Err(err).Msg("stopped")
	return err
}

// startState is what the probes say before the consumer runs: while
// profiled waits for Kafka or Redis at start it is alive and not ready.
type startState struct {
	running atomic.Int64 // unix nanos when the consumer started; 0 before
	mu      sync.Mutex
	waiting string
}

func (s *startState) run() { s.running.Store(time.Now().UnixNano()) }

// stalled tells whether the consumer loop has run for longer than within
// without a sign of life. A consumer that started a moment ago after a
// long wait has not had its first chance to show one.
func (s *startState) stalled(cons *consumer.Consumer, within time.Duration) bool {
	since := s.running.Load()
	return since != 0 && time.Since(time.Unix(0, since)) > within && !cons.Alive(within)
}

func (s *startState) wait(why string) {
	s.mu.Lock()
	s.waiting = why
	s.mu.Unlock()
}

func (s *startState) why() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting == "" {
		return "starting"
	}
	return "starting: " + s.waiting
}

// startBackoff is the wait between two start-up checks: the consumer's
// retry policy, as for an outage later.
func startBackoff() consumer.Backoff {
	return consumer.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
}

// waitForKafka checks the input topics and creates the dead-letter topic.
// A Kafka that does not answer is waited for, like an outage later; what
// only a setting can fix (a missing topic, refused credentials or TLS)
// stops the start.
func waitForKafka(ctx context.Context, cons *consumer.Consumer, st *startState, log zerolog.Logger) error {
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := cons.Prepare(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if named := kafkaSettingError(err); named != nil {
			return named
		}
		st.wait("kafka does not answer: " + err.Error())
		log.Warn().Err(err).Int("attempt", attempt+1).Msg("kafka does not answer yet; waiting for it (not ready)")
		if !startBackoff().Wait(ctx, attempt) {
			return ctx.Err()
		}
	}
}

// waitForRedis waits until Redis answers, like for an outage later, then
// checks what only a setting can fix: the credentials and database (which
// the connection's AUTH and SELECT try) and an eviction policy that could
// drop bookkeeping. ownRedis is the embedded quick start's Redis, which
// never evicts.
func waitForRedis(ctx context.Context, rdb redis.UniversalClient, store *sink.Sink, ownRedis bool, cfg *config, st *startState, log zerolog.Logger) error {
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, cfg.Redis.Timeout+time.Second)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if named := cfg.Redis.settingError(err); named != nil {
			return named
		}
		st.wait("redis does not answer: " + err.Error())
		log.Warn().Err(err).Int("attempt", attempt+1).Msg("redis does not answer yet; waiting for it (not ready)")
		if !startBackoff().Wait(ctx, attempt) {
			return ctx.Err()
		}
	}
	if !ownRedis {
		if err := checkEvictionPolicy(ctx, rdb, cfg.Redis.Timeout, log); err != nil {
			return err
		}
	}
	// Redis answered a moment ago; if it went away since, the first batch
	// loads the script.
	if err := store.Load(ctx); err != nil {
		if named := cfg.Redis.settingError(err); named != nil {
			return named
		}
		log.Warn().Err(err).Msg("could not load the profile script yet; will retry with each batch")
	}
	return nil
}

// checkEvictionPolicy stops the start unless every server's
// maxmemory-policy is noeviction: an evicted watermark, dedupe set or link
// would make events count twice. A server that refuses CONFIG GET (managed
// Redis) is trusted with a warning.
func checkEvictionPolicy(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration, log zerolog.Logger) error {
	check := func(ctx context.Context, c *redis.Client) error {
		cctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
		defer cancel()
		m, err := c.ConfigGet(cctx, "maxmemory-policy").Result()
		if err != nil {
			log.Warn().Err(err).Str("server", c.Options().Addr).Msg("cannot read maxmemory-policy (CONFIG GET refused?): make sure it is noeviction, or evicted bookkeeping makes events count twice")
			return nil
		}
		if p, ok := m["maxmemory-policy"]; ok && p != "noeviction" {
			return fmt.Errorf("redis %s: maxmemory-policy is %s; profiled requires noeviction: an evicted offset watermark, dedupe set or link would make events count twice. Set maxmemory-policy noeviction on the server (and give it memory enough)", c.Options().Addr, p)
		}
		return nil
	}
	if cl, ok := rdb.(*redis.ClusterClient); ok {
		return cl.ForEachMaster(ctx, check)
	}
	if c, ok := rdb.(*redis.Client); ok {
		return check(ctx, c)
	}
	return nil
}

// settingError returns err naming the setting to fix when Redis refused
// what only a setting can fix (credentials, permissions, the database
// number), or nil for anything else, which is waited for as an outage.
func (r redisSettings) settingError(err error) error {
	msg := err.Error()
	credentials := "redis-password"
	if r.URL != "" {
		credentials = "redis-url"
	}
	for _, refusal := range []struct{ prefix, setting, why string }{
		{"WRONGPASS", credentials, "Redis refused the user name or password"},
		{"NOAUTH", credentials, "Redis requires a password and none was given"},
		{"ERR AUTH", credentials, "Redis refused the password"},
		{"NOPERM", credentials, "the Redis user lacks a permission profiled needs"},
		{"ERR DB index", "redis-url", "the database number is beyond the server's databases"},
		{"ERR invalid DB index", "redis-url", "the database number is not valid"},
		{"ERR SELECT is not allowed in cluster mode", "redis-url", "a Redis Cluster has only database 0"},
	} {
		if strings.HasPrefix(msg, refusal.prefix) {
			return named(refusal.setting, fmt.Errorf("%s: %w", refusal.why, err))
		}
	}
	return nil
}

func serveHTTP(cfg *config, reg *prometheus.Registry, cons *consumer.Consumer, st *startState) (*http.Server, net.Listener, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		// waiting for Kafka or Redis at start is alive: a restart would
		// not bring them
		if st.stalled(cons, 60*time.Second) {
			http.Error(w, "consumer loop stalled", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if st.running.Load() == 0 {
			http.Error(w, "not ready: "+st.why(), http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := cons.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, nil, named("http-addr", err)
	}
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln, nil
}
