package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/profile"
)

// config is every setting of profiled. Each has a flag and a PROFILED_*
// variable; the flag wins.
type config struct {
	KafkaBrokers        []string
	KafkaTopics         []string
	KafkaGroup          string
	KafkaStartOffset    string
	KafkaSASLMechanism  string
	KafkaSASLUsername   string
	KafkaSASLPassword   string
	KafkaTLS            bool
	KafkaTLSCAFile      string
	KafkaTLSCertFile    string
	KafkaTLSKeyFile     string
	KafkaTLSSkipVerify  bool
	KafkaSessionTimeout time.Duration
	DLQTopic            string
	BatchSize           int
	BatchTime           time.Duration

	RedisURL            string
	RedisClusterAddrs   []string
	RedisSentinelAddrs  []string
	RedisSentinelMaster string
	RedisUsername       string
	RedisPassword       string
	RedisKeyPrefix      string
	RedisTimeout        time.Duration

	HTTPAddr  string
	Pprof     bool
	APIAddr   string
	APIToken  string
	LogLevel  string
	LogFormat string

	LaunchEvents       []string
	JunkIDs            []string
	DedupeWindow       time.Duration
	MaxEventBytes      int
	MaxClockSkew       time.Duration
	DefaultPhoneRegion string
	ShutdownTimeout    time.Duration

	Embedded       bool
	EmbeddedSample string
}

type setting struct {
	name   string // flag name; the variable is PROFILED_ + upper snake case
	def    string
	help   string
	secret bool
	set    func(c *config, v string) error
}

func envName(flagName string) string {
	return "PROFILED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want a duration such as 500ms, 10s or 24h")
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errors.New("want an integer")
	}
	return n, nil
}

var settings = []setting{
	{"kafka-brokers", "", "Kafka bootstrap brokers, comma-separated host:port (required unless embedded)", false,
		func(c *config, v string) error { c.KafkaBrokers = list(v); return nil }},
	{"kafka-topics", "events", "input topics, comma-separated", false,
		func(c *config, v string) error { c.KafkaTopics = list(v); return nil }},
	{"kafka-group", "profiled", "consumer group id", false,
		func(c *config, v string) error { c.KafkaGroup = v; return nil }},
	{"kafka-start-offset", "earliest", "where a group without committed offsets starts: earliest or latest", false,
		func(c *config, v string) error {
			if v != consumer.StartEarliest && v != consumer.StartLatest {
				return errors.New("want earliest or latest")
			}
			c.KafkaStartOffset = v
			return nil
		}},
	{"kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none", false,
		func(c *config, v string) error {
			switch strings.ToUpper(v) {
			case "", kafka.SASLPlain, kafka.SASLSCRAMSHA256, kafka.SASLSCRAMSHA512:
				c.KafkaSASLMechanism = strings.ToUpper(v)
				return nil
			}
			return errors.New("want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}},
	{"kafka-sasl-username", "", "SASL username", false,
		func(c *config, v string) error { c.KafkaSASLUsername = v; return nil }},
	{"kafka-sasl-password", "", "SASL password", true,
		func(c *config, v string) error { c.KafkaSASLPassword = v; return nil }},
	{"kafka-tls", "false", "connect to Kafka with TLS", false,
		func(c *config, v string) (err error) { c.KafkaTLS, err = parseBool(v); return }},
	{"kafka-tls-ca-file", "", "PEM file of CAs to trust for Kafka (default: the system's)", false,
		func(c *config, v string) error { c.KafkaTLSCAFile = v; return nil }},
	{"kafka-tls-cert-file", "", "PEM client certificate for Kafka mTLS", false,
		func(c *config, v string) error { c.KafkaTLSCertFile = v; return nil }},
	{"kafka-tls-key-file", "", "PEM client key for Kafka mTLS", false,
		func(c *config, v string) error { c.KafkaTLSKeyFile = v; return nil }},
	{"kafka-tls-insecure-skip-verify", "false", "skip verifying the brokers' certificates (testing only)", false,
		func(c *config, v string) (err error) { c.KafkaTLSSkipVerify, err = parseBool(v); return }},
	{"kafka-session-timeout", "10s", "consumer group session timeout: how soon a dead instance's partitions move", false,
		func(c *config, v string) (err error) { c.KafkaSessionTimeout, err = parseDuration(v); return }},
	{"dlq-topic", "profiled-dlq", "dead-letter topic (created when missing)", false,
		func(c *config, v string) error { c.DLQTopic = v; return nil }},
	{"batch-size", "1000", "most records per batch (one Redis pipeline per batch)", false,
		func(c *config, v string) (err error) { c.BatchSize, err = parseInt(v); return }},
	{"batch-time", "1ms", "how long a batch waits for more records while the writer is idle (batches also grow by themselves while it is busy)", false,
		func(c *config, v string) (err error) { c.BatchTime, err = parseDuration(v); return }},
	{"redis-url", "", "Redis server URL: redis:// or rediss://, with user, password and db", true,
		func(c *config, v string) error { c.RedisURL = v; return nil }},
	{"redis-cluster-addrs", "", "Redis Cluster seed addresses, comma-separated host:port", false,
		func(c *config, v string) error { c.RedisClusterAddrs = list(v); return nil }},
	{"redis-sentinel-addrs", "", "Redis Sentinel addresses, comma-separated host:port", false,
		func(c *config, v string) error { c.RedisSentinelAddrs = list(v); return nil }},
	{"redis-sentinel-master", "", "Sentinel master name", false,
		func(c *config, v string) error { c.RedisSentinelMaster = v; return nil }},
	{"redis-username", "", "Redis ACL user for Cluster or Sentinel (a URL carries its own)", false,
		func(c *config, v string) error { c.RedisUsername = v; return nil }},
	{"redis-password", "", "Redis password for Cluster or Sentinel (a URL carries its own)", true,
		func(c *config, v string) error { c.RedisPassword = v; return nil }},
	{"redis-key-prefix", "", "prefix of every Redis key", false,
		func(c *config, v string) error { c.RedisKeyPrefix = v; return nil }},
	{"redis-timeout", "3s", "Redis read and write timeout", false,
		func(c *config, v string) (err error) { c.RedisTimeout, err = parseDuration(v); return }},
	{"http-addr", ":8080", "listen address of /metrics, /livez, /readyz", false,
		func(c *config, v string) error { c.HTTPAddr = v; return nil }},
	{"pprof", "false", "serve /debug/pprof/ on the HTTP address", false,
		func(c *config, v string) (err error) { c.Pprof, err = parseBool(v); return }},
	{"log-level", "info", "debug, info, warn or error", false,
		func(c *config, v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return errors.New("want debug, info, warn or error")
		}},
	{"log-format", "json", "json or console", false,
		func(c *config, v string) error {
			if v != "json" && v != "console" {
				return errors.New("want json or console")
			}
			c.LogFormat = v
			return nil
		}},
	{"launch-events", "Application Opened,App Launched", "track event names that count as app launches, comma-separated", false,
		func(c *config, v string) error { c.LaunchEvents = list(v); return nil }},
	{"junk-ids", "null,undefined,anonymous,guest,none,nan,0,-1,[object object]", "identity values that never name a user (case-insensitive; all-zero strings always)", false,
		func(c *config, v string) error { c.JunkIDs = list(v); return nil }},
	{"dedupe-window", "24h", "how long a messageId is remembered per profile; 0 turns messageId dedupe off", false,
		func(c *config, v string) (err error) { c.DedupeWindow, err = parseDuration(v); return }},
	{"max-event-bytes", "32768", "largest accepted record value in bytes", false,
		func(c *config, v string) (err error) { c.MaxEventBytes, err = parseInt(v); return }},
	{"max-clock-skew", "24h", "how far in the future an event time may lie", false,
		func(c *config, v string) (err error) { c.MaxClockSkew, err = parseDuration(v); return }},
	{"default-phone-region", "", "ISO 3166 region for phone numbers without +, e.g. IN or US; empty drops them", false,
		func(c *config, v string) error { c.DefaultPhoneRegion = strings.ToUpper(v); return nil }},
	{"shutdown-timeout", "25s", "grace period to finish and commit the work in flight on SIGTERM", false,
		func(c *config, v string) (err error) { c.ShutdownTimeout, err = parseDuration(v); return }},
	{"embedded", "false", "run an in-process Kafka broker and Redis when none is configured (quick start only)", false,
		func(c *config, v string) (err error) { c.Embedded, err = parseBool(v); return }},
	{"embedded-sample", "", "JSON-lines file produced into the embedded broker at start", false,
		func(c *config, v string) error { c.EmbeddedSample = v; return nil }},
	{"api-addr", "", "listen address of the read API (/v1/profiles/{id}, /profiles/{id}); empty turns it off", false,
		func(c *config, v string) error { c.APIAddr = strings.TrimSpace(v); return nil }},
	{"api-token", "", "token the read API requires (bearer, or the Basic auth password); at least 16 characters", true,
		// a header cannot carry surrounding white space, so a Secret's
		// trailing newline must not make the token unusable
		func(c *config, v string) error { c.APIToken = strings.TrimSpace(v); return nil }},
}

// flagValue holds a setting's raw text; on/off settings are boolean flags,
// so a bare --embedded means --embedded=true.
type flagValue struct {
	v      *string
	isBool bool
}

func (f flagValue) String() string {
	if f.v == nil {
		return ""
	}
	return *f.v
}
func (f flagValue) Set(s string) error { *f.v = s; return nil }
func (f flagValue) IsBoolFlag() bool   { return f.isBool }

func register(fs *flag.FlagSet, s setting, v string) *string {
	p := new(string)
	*p = v
	fs.Var(flagValue{v: p, isBool: s.def == "true" || s.def == "false"}, s.name, s.help)
	return p
}

// loadConfig reads defaults, then PROFILED_* variables, then flags.
func loadConfig(args []string, getenv func(string) string, usageOut io.Writer) (*config, error) {
	fs := flag.NewFlagSet("profiled", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	raw := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := s.def
		if e := getenv(envName(s.name)); e != "" {
			v = e
		}
		raw[s.name] = register(fs, s, v)
	}
	fs.Usage = func() {
		fmt.Fprintln(usageOut, "Usage: profiled [flags]\n\nEvery flag can also be set by its variable; the flag wins.")
		for _, s := range settings {
			def := s.def
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(usageOut, "  --%s  %s\n      %s (default %s)\n", s.name, envName(s.name), s.help, def)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c := &config{}
	for _, s := range settings {
		if err := s.set(c, *raw[s.name]); err != nil {
			return nil, fmt.Errorf("%s (--%s): %w", envName(s.name), s.name, err)
		}
	}
	return c, c.validate()
}

func (c *config) validate() error {
	bad := func(name, msg string) error {
		return fmt.Errorf("%s (--%s): %s", envName(name), name, msg)
	}
	if !c.Embedded {
		if len(c.KafkaBrokers) == 0 {
			return bad("kafka-brokers", "required (or set PROFILED_EMBEDDED=true for the in-process quick start)")
		}
		if c.RedisURL == "" && len(c.RedisClusterAddrs) == 0 && len(c.RedisSentinelAddrs) == 0 {
			return bad("redis-url", "required: set a Redis URL, cluster addresses or sentinel addresses (or PROFILED_EMBEDDED=true)")
		}
	}
	n := 0
	for _, set := range []bool{c.RedisURL != "", len(c.RedisClusterAddrs) > 0, len(c.RedisSentinelAddrs) > 0} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return bad("redis-url", "set only one of the Redis URL, cluster addresses and sentinel addresses")
	case len(c.RedisSentinelAddrs) > 0 && c.RedisSentinelMaster == "":
		return bad("redis-sentinel-master", "required with sentinel addresses")
	case c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://"):
		return bad("redis-url", "want a redis:// or rediss:// URL")
	case c.RedisURL != "" && !validRedisURL(c.RedisURL):
		// the parser's message quotes the URL, password included
		return bad("redis-url", "not a valid Redis URL (scheme, user, password, host, port, db)")
	case len(c.KafkaTopics) == 0:
		return bad("kafka-topics", "at least one topic required")
	case c.KafkaGroup == "":
		return bad("kafka-group", "required")
	case c.DLQTopic == "":
		return bad("dlq-topic", "required")
	case c.BatchSize < 1 || c.BatchSize > 100000:
		return bad("batch-size", "want 1..100000")
	case c.BatchTime <= 0:
		return bad("batch-time", "must be positive")
	case c.MaxEventBytes < 64:
		return bad("max-event-bytes", "must be at least 64")
	case len(c.LaunchEvents) == 0:
		return bad("launch-events", "at least one name required")
	case c.ShutdownTimeout < time.Second:
		return bad("shutdown-timeout", "must be at least 1s")
	case c.KafkaSASLMechanism != "" && c.KafkaSASLUsername == "":
		return bad("kafka-sasl-username", "required with a SASL mechanism")
	case (c.KafkaTLSCertFile == "") != (c.KafkaTLSKeyFile == ""):
		return bad("kafka-tls-cert-file", "a client certificate needs its key, and a key its certificate")
	case c.RedisTimeout <= 0:
		return bad("redis-timeout", "must be positive")
	}
	for _, t := range c.KafkaTopics {
		if t == c.DLQTopic {
			return bad("dlq-topic", "must differ from every input topic")
		}
	}
	if err := c.validateAPI(bad); err != nil {
		return err
	}
	if c.DefaultPhoneRegion != "" {
		pc := profile.DefaultConfig()
		pc.DefaultPhoneRegion = c.DefaultPhoneRegion
		if err := pc.Validate(); err != nil {
			return bad("default-phone-region", "not a known region")
		}
	}
	return nil
}

func validRedisURL(u string) bool {
	_, err := redis.ParseURL(u)
	return err == nil
}

// redacted returns the effective configuration with secrets hidden, for
// the start-up log.
func (c *config) redacted(getenv func(string) string, args []string) map[string]string {
	out := map[string]string{}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	raw := map[string]*string{}
	for _, s := range settings {
		v := s.def
		if e := getenv(envName(s.name)); e != "" {
			v = e
		}
		raw[s.name] = register(fs, s, v)
	}
	_ = fs.Parse(args)
	for _, s := range settings {
		v := *raw[s.name]
		if s.secret && v != "" {
			v = redactValue(s.name, v)
		}
		out[s.name] = v
	}
	return out
}

// redactValue hides a secret; a Redis URL keeps its scheme, host and db.
func redactValue(name, v string) string {
	if name == "redis-url" {
		if at := strings.LastIndex(v, "@"); at >= 0 {
			scheme := v[:strings.Index(v, "://")+3]
			return scheme + "REDACTED@" + v[at+1:]
		}
		return v
	}
	return "REDACTED"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tlsConfig builds the Kafka TLS configuration, or nil without TLS.
func (c *config) tlsConfig() (*tls.Config, error) {
	if !c.KafkaTLS {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.KafkaTLSSkipVerify} //nolint:gosec // opt-in for testing
	if c.KafkaTLSCAFile != "" {
		pem, err := os.ReadFile(c.KafkaTLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envName("kafka-tls-ca-file"), err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate found", envName("kafka-tls-ca-file"))
		}
		t.RootCAs = pool
	}
	if c.KafkaTLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.KafkaTLSCertFile, c.KafkaTLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envName("kafka-tls-cert-file"), err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
