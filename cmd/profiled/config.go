package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/consumer"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// config is every setting of profiled. It is composed of the packages' own
// configurations, which keep their defaults and their rules (Validate);
// what belongs to no package (connections, logging, HTTP) is checked here.
// The settings table maps each flag and PROFILED_* variable onto one field.
type config struct {
	Kafka    kafkaSettings
	Consumer consumer.Config // its Conn is built from Kafka by kafkaSettings.conn
	Redis    redisSettings
	Sink     sink.Config
	Profile  profile.Config

	HTTPAddr        string
	Pprof           bool
	APIAddr         string
	APIToken        string
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration

	Embedded       bool
	EmbeddedSample string
}

// kafkaSettings is how to reach Kafka, as the operator writes it: file
// names rather than a loaded TLS configuration.
type kafkaSettings struct {
	Brokers       []string
	SASLMechanism string
	SASLUsername  string
	SASLPassword  string
	TLS           bool
	TLSCAFile     string
	TLSCertFile   string
	TLSKeyFile    string
	TLSSkipVerify bool
}

// redisSettings is how to reach Redis: one server by URL, a Cluster, or
// Sentinel.
type redisSettings struct {
	URL            string
	ClusterAddrs   []string
	SentinelAddrs  []string
	SentinelMaster string
	Username       string
	Password       string
	Timeout        time.Duration
}

// defaultConfig is the product's defaults: the packages' own, plus the
// names and addresses that only the service decides.
func defaultConfig() config {
	cc := consumer.DefaultConfig()
	cc.Topics = []string{"events"}
	cc.Group = "profiled"
	cc.DLQTopic = "profiled-dlq"
	return config{
		Consumer:        cc,
		Redis:           redisSettings{Timeout: 3 * time.Second},
		Sink:            sink.DefaultConfig(),
		Profile:         profile.DefaultConfig(),
		HTTPAddr:        ":8080",
		LogLevel:        "info",
		LogFormat:       "json",
		ShutdownTimeout: 25 * time.Second,
	}
}

// setting is one flag and its PROFILED_* variable.
type setting struct {
	name string // flag name; the variable is PROFILED_ + upper snake case
	help string
	// field points at the setting's field in c: a *string, *[]string,
	// *int, *bool or *time.Duration; its value in defaultConfig is the
	// setting's default.
	field func(c *config) any
	// path is how the package rule that checks the field starts its error
	// ("consumer: batch size"), so the error can name the setting.
	path   string
	secret bool
	norm   func(string) string // applied to the text before parsing
}

var settings = []setting{
	{name: "kafka-brokers", help: "Kafka bootstrap brokers, comma-separated host:port (required unless embedded)",
		field: func(c *config) any { return &c.Kafka.Brokers }, path: "kafka: brokers"},
	{name: "kafka-topics", help: "input topics, comma-separated",
		field: func(c *config) any { return &c.Consumer.Topics }, path: "consumer: topics"},
	{name: "kafka-group", help: "consumer group id",
		field: func(c *config) any { return &c.Consumer.Group }, path: "consumer: group"},
	{name: "kafka-start-offset", help: "where a group without committed offsets starts: earliest or latest",
		field: func(c *config) any { return &c.Consumer.StartOffset }, path: "consumer: start offset"},
	{name: "kafka-sasl-mechanism", help: "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none",
		field: func(c *config) any { return &c.Kafka.SASLMechanism }, path: "kafka: sasl: mechanism", norm: strings.ToUpper},
	{name: "kafka-sasl-username", help: "SASL username",
		field: func(c *config) any { return &c.Kafka.SASLUsername }, path: "kafka: sasl: username"},
	{name: "kafka-sasl-password", help: "SASL password", secret: true,
		field: func(c *config) any { return &c.Kafka.SASLPassword }},
	{name: "kafka-tls", help: "connect to Kafka with TLS; the other kafka-tls settings need it",
		field: func(c *config) any { return &c.Kafka.TLS }},
	{name: "kafka-tls-ca-file", help: "PEM file of CAs to trust for Kafka (default: the system's); needs kafka-tls",
		field: func(c *config) any { return &c.Kafka.TLSCAFile }},
	{name: "kafka-tls-cert-file", help: "PEM client certificate for Kafka mTLS; needs kafka-tls and the key",
		field: func(c *config) any { return &c.Kafka.TLSCertFile }},
	{name: "kafka-tls-key-file", help: "PEM client key for Kafka mTLS; needs kafka-tls and the certificate",
		field: func(c *config) any { return &c.Kafka.TLSKeyFile }},
	{name: "kafka-tls-insecure-skip-verify", help: "skip verifying the brokers' certificates (testing only); needs kafka-tls",
		field: func(c *config) any { return &c.Kafka.TLSSkipVerify }},
	{name: "kafka-session-timeout", help: "consumer group session timeout: how soon a dead instance's partitions move; within the broker's group.min/max.session.timeout.ms",
		field: func(c *config) any { return &c.Consumer.SessionTimeout }, path: "consumer: session timeout"},
	{name: "dlq-topic", help: "dead-letter topic (created when missing)",
		field: func(c *config) any { return &c.Consumer.DLQTopic }, path: "consumer: dlq topic"},
	{name: "batch-size", help: "most records per batch (one Redis pipeline per batch)",
		field: func(c *config) any { return &c.Consumer.BatchSize }, path: "consumer: batch size"},
	{name: "batch-time", help: "how long a batch waits for more records while the writer is idle (batches also grow by themselves while it is busy)",
		field: func(c *config) any { return &c.Consumer.BatchTime }, path: "consumer: batch time"},
	{name: "redis-url", help: "Redis server URL: redis:// or rediss://, with user, password and db", secret: true,
		field: func(c *config) any { return &c.Redis.URL }},
	{name: "redis-cluster-addrs", help: "Redis Cluster seed addresses, comma-separated host:port",
		field: func(c *config) any { return &c.Redis.ClusterAddrs }},
	{name: "redis-sentinel-addrs", help: "Redis Sentinel addresses, comma-separated host:port",
		field: func(c *config) any { return &c.Redis.SentinelAddrs }},
	{name: "redis-sentinel-master", help: "Sentinel master name",
		field: func(c *config) any { return &c.Redis.SentinelMaster }},
	{name: "redis-username", help: "Redis ACL user for Cluster or Sentinel (a URL carries its own)",
		field: func(c *config) any { return &c.Redis.Username }},
	{name: "redis-password", help: "Redis password for Cluster or Sentinel (a URL carries its own)", secret: true,
		field: func(c *config) any { return &c.Redis.Password }},
	{name: "redis-key-prefix", help: "prefix of every Redis key; no { } * ? [ ] \\ or control characters",
		field: func(c *config) any { return &c.Sink.KeyPrefix }, path: "sink: key prefix"},
	{name: "redis-timeout", help: "Redis read and write timeout",
		field: func(c *config) any { return &c.Redis.Timeout }},
	{name: "redis-min-replicas", help: "replicas that must acknowledge each batch's writes before its offsets are committed (WAIT); 0 for none",
		field: func(c *config) any { return &c.Sink.MinReplicas }, path: "sink: min replicas"},
	{name: "http-addr", help: "listen address of /metrics, /livez, /readyz",
		field: func(c *config) any { return &c.HTTPAddr }},
	{name: "pprof", help: "serve /debug/pprof/ on the HTTP address",
		field: func(c *config) any { return &c.Pprof }},
	{name: "log-level", help: "debug, info, warn or error",
		field: func(c *config) any { return &c.LogLevel }},
	{name: "log-format", help: "json or console",
		field: func(c *config) any { return &c.LogFormat }},
	{name: "launch-events", help: "track event names that count as app launches, comma-separated",
		field: func(c *config) any { return &c.Profile.LaunchEvents }, path: "profile: launch events"},
	{name: "junk-ids", help: "identity values that never name a user (case-insensitive; all-zero strings always)",
		field: func(c *config) any { return &c.Profile.JunkIDs }},
	{name: "dedupe-window", help: "how long a messageId is remembered per profile; 0 turns messageId dedupe off",
		field: func(c *config) any { return &c.Sink.DedupeWindow }, path: "sink: dedupe window"},
	{name: "max-dedupe-ids", help: "most messageIds remembered per profile within the window; the oldest are forgotten first",
		field: func(c *config) any { return &c.Sink.MaxDedupeIDs }, path: "sink: max dedupe ids"},
	{name: "max-linked-ids", help: "most anonymous ids linked to one user; further links are refused",
		field: func(c *config) any { return &c.Sink.MaxLinkedIDs }, path: "sink: max linked ids"},
	{name: "max-event-bytes", help: "largest accepted record value in bytes",
		field: func(c *config) any { return &c.Profile.MaxEventBytes }, path: "profile: max event bytes"},
	{name: "max-clock-skew", help: "how far in the future an event time may lie",
		field: func(c *config) any { return &c.Profile.MaxClockSkew }, path: "profile: max clock skew"},
	{name: "default-phone-region", help: "ISO 3166 region for phone numbers without +, e.g. IN or US; empty drops them",
		field: func(c *config) any { return &c.Profile.DefaultPhoneRegion }, path: "profile: default phone region", norm: strings.ToUpper},
	{name: "shutdown-timeout", help: "grace period to finish and commit the work in flight on SIGTERM",
		field: func(c *config) any { return &c.ShutdownTimeout }},
	{name: "embedded", help: "run an in-process Kafka broker and Redis when none is configured (quick start only)",
		field: func(c *config) any { return &c.Embedded }},
	{name: "embedded-sample", help: "JSON-lines file produced into the embedded broker at start",
		field: func(c *config) any { return &c.EmbeddedSample }},
	{name: "api-addr", help: "listen address of the read API (/v1/profiles/{id}, /profiles/{id}); empty turns it off",
		field: func(c *config) any { return &c.APIAddr }, norm: strings.TrimSpace},
	// a header cannot carry surrounding white space, so a Secret's trailing
	// newline must not make the token unusable
	{name: "api-token", help: "token the read API requires (bearer, or the Basic auth password); at least 16 characters", secret: true,
		field: func(c *config) any { return &c.APIToken }, norm: strings.TrimSpace},
}

// reservedPrefixes are the PROFILED_* names of the project's own test and
// build tools; profiled never reads them and does not warn about them.
var reservedPrefixes = []string{
	"PROFILED_TEST_",           // test harnesses: services, binaries, fault hooks
	"PROFILED_FAULTS",          // the fault suite
	"PROFILED_HELM",            // deploy tests: the helm binary
	"PROFILED_DEPLOY_RENDERED", // deploy tests: the rendered chart
	"PROFILED_CACHE",           // deploy/redis.sh: its download cache
}

func envName(flagName string) string {
	return "PROFILED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// settingError is an invalid setting: the error names its variable and flag.
type settingError struct {
	name string
	err  error
}

func (e *settingError) Error() string {
	return fmt.Sprintf("%s (--%s): %v", envName(e.name), e.name, e.err)
}

func (e *settingError) Unwrap() error { return e.err }

func named(name string, err error) error { return &settingError{name: name, err: err} }

// nameSetting prefixes a package's validation error with its path and, when
// a setting maps onto the field the error is about, names that setting.
func nameSetting(path string, err error) error {
	msg := path + ": " + err.Error()
	var best *setting
	for i := range settings {
		s := &settings[i]
		if s.path != "" && pathOf(msg, s.path) && (best == nil || len(s.path) > len(best.path)) {
			best = s
		}
	}
	if best == nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return named(best.name, fmt.Errorf("%s: %w", path, err))
}

// pathOf tells whether msg is about path: it starts with path, followed by
// the end, a colon or a space ("sasl: username required").
func pathOf(msg, path string) bool {
	rest, ok := strings.CutPrefix(msg, path)
	return ok && (rest == "" || rest[0] == ':' || rest[0] == ' ')
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

// parseInto parses text into the field p points at.
func parseInto(p any, v string) error {
	switch p := p.(type) {
	case *string:
		*p = v
	case *[]string:
		*p = list(v)
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("want an integer")
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("want a duration such as 500ms, 10s or 24h")
		}
		if d < 0 {
			return errors.New("must not be negative")
		}
		*p = d
	default:
		panic(fmt.Sprintf("setting of type %T", p))
	}
	return nil
}

// format is the text of the field p points at, as a setting would give it.
func format(p any) string {
	switch p := p.(type) {
	case *string:
		return *p
	case *[]string:
		return strings.Join(*p, ",")
	case *int:
		return strconv.Itoa(*p)
	case *bool:
		return strconv.FormatBool(*p)
	case *time.Duration:
		s := p.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	panic(fmt.Sprintf("setting of type %T", p))
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

// environment turns KEY=VALUE pairs into a lookup; a later pair wins, as
// in a process's environment built by exec.
func environment(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// loadConfig starts from the defaults, then applies PROFILED_* variables
// (an empty one counts as unset), then flags, and validates the result.
func loadConfig(args []string, environ []string, usageOut io.Writer) (*config, error) {
	env := environment(environ)
	defaults := defaultConfig()
	fs := flag.NewFlagSet("profiled", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	raw := make(map[string]*string, len(settings))
	given := map[string]bool{}
	for _, s := range settings {
		v := format(s.field(&defaults))
		if e := env[envName(s.name)]; e != "" {
			v, given[s.name] = e, true
		}
		p := &v
		raw[s.name] = p
		_, isBool := s.field(&defaults).(*bool)
		fs.Var(flagValue{v: p, isBool: isBool}, s.name, s.help)
	}
	fs.Usage = func() { usage(usageOut, &defaults) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	c := defaultConfig()
	for _, s := range settings {
		if !given[s.name] {
			continue
		}
		v := *raw[s.name]
		if s.norm != nil {
			v = s.norm(v)
		}
		if err := parseInto(s.field(&c), v); err != nil {
			return nil, named(s.name, err)
		}
	}
	return &c, c.validate()
}

func usage(out io.Writer, defaults *config) {
	fmt.Fprintln(out, "Usage: profiled [flags]\n\nEvery flag can also be set by its variable; the flag wins. An empty variable counts as unset.")
	for _, s := range settings {
		def := format(s.field(defaults))
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(out, "  --%s  %s\n      %s (default %s)\n", s.name, envName(s.name), s.help, def)
	}
	// the test tools' names are not listed: tools that read this list
	// take every PROFILED_ name in it for a setting
	fmt.Fprintln(out, "\nAny other variable whose name starts with PROFILED and an underscore is warned about at start, except the names the project's test tools use (see the README).")
}

// unknownVariables returns the PROFILED_* variables of environ that name
// no setting and no test tool: most likely typos, which would otherwise
// fall back to a default without a word.
func unknownVariables(environ []string) []string {
	known := map[string]bool{}
	for _, s := range settings {
		known[envName(s.name)] = true
	}
	var out []string
	for k := range environment(environ) {
		if !strings.HasPrefix(k, "PROFILED_") || known[k] {
			continue
		}
		reserved := false
		for _, p := range reservedPrefixes {
			reserved = reserved || strings.HasPrefix(k, p)
		}
		if !reserved {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// validate checks the settings no package owns, then each package's own
// configuration; the first error names its setting.
func (c *config) validate() error {
	if err := c.validateOwn(); err != nil {
		return err
	}
	conn, err := c.Kafka.conn()
	if err != nil {
		return err
	}
	cc := c.Consumer
	cc.Conn = conn
	if len(cc.Conn.Brokers) == 0 && c.Embedded {
		// the embedded broker supplies them at start
		cc.Conn.Brokers = []string{"127.0.0.1:9092"}
	}
	if err := cc.Validate(); err != nil {
		return nameSetting("consumer", err)
	}
	if err := c.Redis.validate(c.Embedded); err != nil {
		return err
	}
	if err := c.Sink.Validate(); err != nil {
		return nameSetting("sink", err)
	}
	if err := c.Profile.Validate(); err != nil {
		return nameSetting("profile", err)
	}
	return c.validateAPI()
}

func (c *config) validateOwn() error {
	switch {
	case !c.Embedded && len(c.Kafka.Brokers) == 0:
		return named("kafka-brokers", errors.New("required (or set PROFILED_EMBEDDED=true for the in-process quick start)"))
	case !c.Embedded && !c.Redis.configured():
		return named("redis-url", errors.New("required: set a Redis URL, cluster addresses or sentinel addresses (or PROFILED_EMBEDDED=true)"))
	case c.Embedded && !c.Redis.configured() && c.Sink.MinReplicas > 0:
		return named("redis-min-replicas", errors.New("the embedded Redis has no replicas: use 0, or configure a Redis with replicas"))
	case c.LogLevel != "debug" && c.LogLevel != "info" && c.LogLevel != "warn" && c.LogLevel != "error":
		return named("log-level", errors.New("want debug, info, warn or error"))
	case c.LogFormat != "json" && c.LogFormat != "console":
		return named("log-format", errors.New("want json or console"))
	case c.ShutdownTimeout < time.Second:
		return named("shutdown-timeout", errors.New("must be at least 1s"))
	}
	return nil
}

// hostPort checks that addr is host:port with a port number.
func hostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port", addr)
	}
	if host == "" {
		return fmt.Errorf("%q: want host:port, the host is missing", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: want host:port with a port number 1..65535", addr)
	}
	return nil
}

func (r redisSettings) configured() bool {
	return r.URL != "" || len(r.ClusterAddrs) > 0 || len(r.SentinelAddrs) > 0
}

func (r redisSettings) validate(embedded bool) error {
	n := 0
	for _, set := range []bool{r.URL != "", len(r.ClusterAddrs) > 0, len(r.SentinelAddrs) > 0} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return named("redis-url", errors.New("set only one of the Redis URL, cluster addresses and sentinel addresses"))
	case len(r.SentinelAddrs) > 0 && r.SentinelMaster == "":
		return named("redis-sentinel-master", errors.New("required with sentinel addresses"))
	case r.URL != "" && !strings.HasPrefix(r.URL, "redis://") && !strings.HasPrefix(r.URL, "rediss://"):
		return named("redis-url", errors.New("want a redis:// or rediss:// URL"))
	case r.URL != "" && !validRedisURL(r.URL):
		// the parser's message quotes the URL, password included
		return named("redis-url", errors.New("not a valid Redis URL (scheme, user, password, host, port, db)"))
	case r.Timeout <= 0:
		return named("redis-timeout", errors.New("must be positive"))
	}
	for _, a := range r.ClusterAddrs {
		if err := hostPort(a); err != nil {
			return named("redis-cluster-addrs", err)
		}
	}
	for _, a := range r.SentinelAddrs {
		if err := hostPort(a); err != nil {
			return named("redis-sentinel-addrs", err)
		}
	}
	return nil
}

func validRedisURL(u string) bool {
	_, err := redis.ParseURL(u)
	return err == nil
}

// client returns the Redis client the settings describe.
func (r redisSettings) client() (redis.UniversalClient, error) {
	switch {
	case len(r.ClusterAddrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: r.ClusterAddrs, Username: r.Username, Password: r.Password,
			ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
		}), nil
	case len(r.SentinelAddrs) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: r.SentinelMaster, SentinelAddrs: r.SentinelAddrs,
			Username: r.Username, Password: r.Password,
			ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
		}), nil
	default:
		opts, err := redis.ParseURL(r.URL)
		if err != nil { // validate parsed it already; never echo the URL
			return nil, named("redis-url", errors.New("not a valid Redis URL"))
		}
		opts.ReadTimeout, opts.WriteTimeout = r.Timeout, r.Timeout
		return redis.NewClient(opts), nil
	}
}

// redacted returns the effective configuration with secrets hidden, for
// the start-up log.
func (c *config) redacted() map[string]string {
	out := make(map[string]string, len(settings))
	for _, s := range settings {
		v := format(s.field(c))
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
