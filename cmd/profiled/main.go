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
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// Set by -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = "unknown"
)

func main() {
	// The pipeline allocates a little per record over a small live heap
	// (about 20 MiB), so the default GOGC=100 collects several times a
	// second under load. 200 halves the collections for about 20 MiB more.
	// An operator's GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
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

func newRedis(c *config) (redis.UniversalClient, error) {
	switch {
	case len(c.RedisClusterAddrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.RedisClusterAddrs, Username: c.RedisUsername, Password: c.RedisPassword,
			ReadTimeout: c.RedisTimeout, WriteTimeout: c.RedisTimeout,
		}), nil
	case len(c.RedisSentinelAddrs) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.RedisSentinelMaster, SentinelAddrs: c.RedisSentinelAddrs,
			Username: c.RedisUsername, Password: c.RedisPassword,
			ReadTimeout: c.RedisTimeout, WriteTimeout: c.RedisTimeout,
		}), nil
	default:
		opts, err := redis.ParseURL(c.RedisURL)
		if err != nil { // validate() parsed it already; never echo the URL
			return nil, fmt.Errorf("%s: not a valid Redis URL", envName("redis-url"))
		}
		opts.ReadTimeout, opts.WriteTimeout = c.RedisTimeout, c.RedisTimeout
		return redis.NewClient(opts), nil
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// --version alone prints the build and exits: what an image's smoke
	// test and an operator asking "which build is this?" run.
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintf(stdout, "profiled %s (revision %s, %s)\n", version, revision, runtime.Version())
		return nil
	}
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)

	var emb *embedded
	if cfg.Embedded {
		emb, err = startEmbedded(ctx, cfg, log)
		if err != nil {
			return fmt.Errorf("embedded: %w", err)
		}
		defer emb.Close()
	}
	eff := cfg.redacted(getenv, args)
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

	pcfg := profile.DefaultConfig()
	pcfg.LaunchEvents = cfg.LaunchEvents
	pcfg.JunkIDs = cfg.JunkIDs
	pcfg.MaxEventBytes = cfg.MaxEventBytes
	pcfg.MaxClockSkew = cfg.MaxClockSkew
	pcfg.DefaultPhoneRegion = cfg.DefaultPhoneRegion
	dec, err := profile.NewDecoder(pcfg)
	if err != nil {
		return err
	}

	rdb, err := newRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := sink.New(rdb, sink.Config{KeyPrefix: cfg.RedisKeyPrefix, DedupeWindow: cfg.DedupeWindow}, reg)

	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return err
	}
	drain := cfg.ShutdownTimeout - 2*time.Second
	if drain < time.Second {
		drain = cfg.ShutdownTimeout / 2
	}
	cons, err := consumer.New(consumer.Config{
		Conn: kafka.Config{
			Brokers: cfg.KafkaBrokers, SASLMechanism: cfg.KafkaSASLMechanism,
			SASLUsername: cfg.KafkaSASLUsername, SASLPassword: cfg.KafkaSASLPassword, TLS: tlsCfg,
		},
		Topics: cfg.KafkaTopics, Group: cfg.KafkaGroup, StartOffset: cfg.KafkaStartOffset,
		DLQTopic: cfg.DLQTopic, BatchSize: cfg.BatchSize, BatchTime: cfg.BatchTime,
		SessionTimeout: cfg.KafkaSessionTimeout, DrainTimeout: drain,
		BeforeCommit: stallBeforeCommit(getenv("PROFILED_TEST_STALL_BEFORE_COMMIT")),
	}, log, reg, dec, store)
	if err != nil {
		return err
	}

	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = cons.Prepare(pctx)
	cancel()
	if err != nil {
		return err
	}
	// A Redis that is down at start is waited for like one that goes down
	// later; only a script that cannot load (a broken server) stops here.
	if err := store.Load(ctx); err != nil {
		log.Warn().Err(err).Msg("could not load the profile script yet; will retry with each batch")
	}

	srv, ln, err := serveHTTP(cfg, reg, cons, log)
	if err != nil {
		return err
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /livez and /readyz")

	stopAPI, err := startAPI(cfg, rdb, log)
	if err != nil {
		_ = srv.Close()
		return err
	}
	defer stopAPI()

	if emb != nil {
		go emb.feedAndReport(ctx, cfg, rdb, stdout)
	}

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
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	_ = srv.Shutdown(sctx)
	scancel()
	if err != nil {
		log.Error().Err(err).Msg("stopped")
		return err
	}
	log.Info().Msg("stopped cleanly")
	return nil
}

func serveHTTP(cfg *config, reg *prometheus.Registry, cons *consumer.Consumer, log zerolog.Logger) (*http.Server, net.Listener, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		if !cons.Alive(60 * time.Second) {
			http.Error(w, "consumer loop stalled", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
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
		return nil, nil, fmt.Errorf("%s: %w", envName("http-addr"), err)
	}
	_ = log
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln, nil
}

// stallBeforeCommit is a fault-injection hook for the crash tests: when
// path is set, the first batch that reaches its commit creates the file at
// path and blocks forever, so a test can kill -9 the process after Redis was
// written and before the offsets were committed.
func stallBeforeCommit(path string) func() {
	if strings.TrimSpace(path) == "" {
		return nil
	}
	return func() {
		_ = os.WriteFile(path, []byte("stalled before commit\n"), 0o600)
		select {}
	}
}
