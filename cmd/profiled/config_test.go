package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/profiled/profiled/internal/testenv"
)

// envOf returns m as a process environment.
func envOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// minimal is the least a non-embedded start needs.
func minimal(extra ...string) map[string]string {
	m := map[string]string{
		"PROFILED_KAFKA_BROKERS": "k1:9092",
		"PROFILED_REDIS_URL":     "redis://r1:6379/0",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func TestConfigDefaultsMatchTheContract(t *testing.T) {
	c, err := loadConfig(nil, envOf(minimal()), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"kafka topics", c.Consumer.Topics, []string{"events"}},
		{"kafka group", c.Consumer.Group, "profiled"},
		{"start offset", c.Consumer.StartOffset, "earliest"},
		{"dlq topic", c.Consumer.DLQTopic, "profiled-dlq"},
		{"dedupe window", c.Sink.DedupeWindow, 24 * time.Hour},
		{"max event bytes", c.Profile.MaxEventBytes, 32768},
		{"max clock skew", c.Profile.MaxClockSkew, 24 * time.Hour},
		{"shutdown timeout", c.ShutdownTimeout, 25 * time.Second},
		{"log format", c.LogFormat, "json"},
		{"log level", c.LogLevel, "info"},
		{"embedded", c.Embedded, false},
		{"launch events", c.Profile.LaunchEvents, []string{"Application Opened", "App Launched"}},
		{"kafka brokers", c.Kafka.Brokers, []string{"k1:9092"}},
		{"redis url", c.Redis.URL, "redis://r1:6379/0"},
		{"default phone region", c.Profile.DefaultPhoneRegion, ""},
		{"kafka tls", c.Kafka.TLS, false},
		{"sasl mechanism", c.Kafka.SASLMechanism, ""},
		{"max linked ids", c.Sink.MaxLinkedIDs, 100},
		{"max dedupe ids", c.Sink.MaxDedupeIDs, 10000},
		{"redis min replicas", c.Sink.MinReplicas, 0},
		{"key prefix", c.Sink.KeyPrefix, ""},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	if c.Consumer.BatchSize < 1 {
		t.Errorf("batch size default %d, want positive", c.Consumer.BatchSize)
	}
	if c.Consumer.BatchTime <= 0 {
		t.Errorf("batch time default %s, want positive", c.Consumer.BatchTime)
	}
}

func TestConfigVariableIsReadAndFlagWins(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		get  func(*config) any
		want any
	}{
		{"group from variable", minimal("PROFILED_KAFKA_GROUP", "g-env"), nil,
			func(c *config) any { return c.Consumer.Group }, "g-env"},
		{"group flag beats variable", minimal("PROFILED_KAFKA_GROUP", "g-env"), []string{"--kafka-group", "g-flag"},
			func(c *config) any { return c.Consumer.Group }, "g-flag"},
		{"topics from variable", minimal("PROFILED_KAFKA_TOPICS", "a, b,,c"), nil,
			func(c *config) any { return c.Consumer.Topics }, []string{"a", "b", "c"}},
		{"topics flag beats variable", minimal("PROFILED_KAFKA_TOPICS", "a,b"), []string{"-kafka-topics=x"},
			func(c *config) any { return c.Consumer.Topics }, []string{"x"}},
		{"batch size from variable", minimal("PROFILED_BATCH_SIZE", "42"), nil,
			func(c *config) any { return c.Consumer.BatchSize }, 42},
		{"batch size flag beats variable", minimal("PROFILED_BATCH_SIZE", "42"), []string{"--batch-size=7"},
			func(c *config) any { return c.Consumer.BatchSize }, 7},
		{"batch time from variable", minimal("PROFILED_BATCH_TIME", "20ms"), nil,
			func(c *config) any { return c.Consumer.BatchTime }, 20 * time.Millisecond},
		{"dedupe window flag beats variable", minimal("PROFILED_DEDUPE_WINDOW", "1h"), []string{"--dedupe-window", "0"},
			func(c *config) any { return c.Sink.DedupeWindow }, time.Duration(0)},
		{"log format from variable", minimal("PROFILED_LOG_FORMAT", "console"), nil,
			func(c *config) any { return c.LogFormat }, "console"},
		{"log level flag beats variable", minimal("PROFILED_LOG_LEVEL", "debug"), []string{"--log-level=warn"},
			func(c *config) any { return c.LogLevel }, "warn"},
		{"start offset from variable", minimal("PROFILED_KAFKA_START_OFFSET", "latest"), nil,
			func(c *config) any { return c.Consumer.StartOffset }, "latest"},
		{"phone region from variable, upper-cased", minimal("PROFILED_DEFAULT_PHONE_REGION", "in"), nil,
			func(c *config) any { return c.Profile.DefaultPhoneRegion }, "IN"},
		{"brokers flag beats variable", minimal(), []string{"--kafka-brokers", "f1:9092,f2:9092"},
			func(c *config) any { return c.Kafka.Brokers }, []string{"f1:9092", "f2:9092"}},
		{"sasl from variables", minimal("PROFILED_KAFKA_SASL_MECHANISM", "scram-sha-512", "PROFILED_KAFKA_SASL_USERNAME", "u"), nil,
			func(c *config) any { return c.Kafka.SASLMechanism }, "SCRAM-SHA-512"},
		{"shutdown timeout from variable", minimal("PROFILED_SHUTDOWN_TIMEOUT", "5s"), nil,
			func(c *config) any { return c.ShutdownTimeout }, 5 * time.Second},
		{"cluster instead of url", map[string]string{"PROFILED_KAFKA_BROKERS": "k:1", "PROFILED_REDIS_CLUSTER_ADDRS": "r1:7000,r2:7000"}, nil,
			func(c *config) any { return c.Redis.ClusterAddrs }, []string{"r1:7000", "r2:7000"}},
		{"sentinel with master", map[string]string{"PROFILED_KAFKA_BROKERS": "k:1", "PROFILED_REDIS_SENTINEL_ADDRS": "s1:26379", "PROFILED_REDIS_SENTINEL_MASTER": "mymaster"}, nil,
			func(c *config) any { return c.Redis.SentinelMaster }, "mymaster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.args, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.get(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestConfigInvalidSettingStopsTheStartNamingIt(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		names string // the variable the error must name
	}{
		{"batch size not a number", minimal("PROFILED_BATCH_SIZE", "abc"), nil, "PROFILED_BATCH_SIZE"},
		{"batch size zero", minimal("PROFILED_BATCH_SIZE", "0"), nil, "PROFILED_BATCH_SIZE"},
		{"batch size flag not a number", minimal(), []string{"--batch-size=abc"}, "PROFILED_BATCH_SIZE"},
		{"batch time not a duration", minimal("PROFILED_BATCH_TIME", "soon"), nil, "PROFILED_BATCH_TIME"},
		{"start offset middle", minimal("PROFILED_KAFKA_START_OFFSET", "middle"), nil, "PROFILED_KAFKA_START_OFFSET"},
		{"log format xml", minimal("PROFILED_LOG_FORMAT", "xml"), nil, "PROFILED_LOG_FORMAT"},
		{"log level loud", minimal("PROFILED_LOG_LEVEL", "loud"), nil, "PROFILED_LOG_LEVEL"},
		{"dedupe window forever", minimal("PROFILED_DEDUPE_WINDOW", "forever"), nil, "PROFILED_DEDUPE_WINDOW"},
		{"dedupe window negative", minimal("PROFILED_DEDUPE_WINDOW", "-1h"), nil, "PROFILED_DEDUPE_WINDOW"},
		{"max event bytes not a number", minimal("PROFILED_MAX_EVENT_BYTES", "big"), nil, "PROFILED_MAX_EVENT_BYTES"},
		{"max event bytes tiny", minimal("PROFILED_MAX_EVENT_BYTES", "1"), nil, "PROFILED_MAX_EVENT_BYTES"},
		{"max clock skew not a duration", minimal("PROFILED_MAX_CLOCK_SKEW", "a day"), nil, "PROFILED_MAX_CLOCK_SKEW"},
		{"shutdown timeout not a duration", minimal("PROFILED_SHUTDOWN_TIMEOUT", "25"), nil, "PROFILED_SHUTDOWN_TIMEOUT"},
		{"embedded not a bool", minimal("PROFILED_EMBEDDED", "maybe"), nil, "PROFILED_EMBEDDED"},
		{"redis url http", minimal("PROFILED_REDIS_URL", "http://x"), nil, "PROFILED_REDIS_URL"},
		{"redis url and cluster", minimal("PROFILED_REDIS_CLUSTER_ADDRS", "r1:7000"), nil, "PROFILED_REDIS_URL"},
		{"sentinel without master", map[string]string{"PROFILED_KAFKA_BROKERS": "k:1", "PROFILED_REDIS_SENTINEL_ADDRS": "s1:26379"}, nil, "PROFILED_REDIS_SENTINEL_MASTER"},
		{"sasl mechanism without username", minimal("PROFILED_KAFKA_SASL_MECHANISM", "PLAIN"), nil, "PROFILED_KAFKA_SASL_USERNAME"},
		{"unknown sasl mechanism", minimal("PROFILED_KAFKA_SASL_MECHANISM", "GSSAPI", "PROFILED_KAFKA_SASL_USERNAME", "u"), nil, "PROFILED_KAFKA_SASL_MECHANISM"},
		{"kafka tls not a bool", minimal("PROFILED_KAFKA_TLS", "yes please"), nil, "PROFILED_KAFKA_TLS"},
		{"tls cert without key", minimal("PROFILED_KAFKA_TLS_CERT_FILE", "/c.pem"), nil, "PROFILED_KAFKA_TLS_CERT_FILE"},
		{"phone region XX", minimal("PROFILED_DEFAULT_PHONE_REGION", "XX"), nil, "PROFILED_DEFAULT_PHONE_REGION"},
		{"dlq equal to input topic", minimal("PROFILED_KAFKA_TOPICS", "events,orders", "PROFILED_DLQ_TOPIC", "orders"), nil, "PROFILED_DLQ_TOPIC"},
		{"dlq empty", minimal("PROFILED_KAFKA_TOPICS", "events"), []string{"--dlq-topic="}, "PROFILED_DLQ_TOPIC"},
		{"topics empty", minimal("PROFILED_KAFKA_TOPICS", " , "), nil, "PROFILED_KAFKA_TOPICS"},
		{"launch events empty", minimal("PROFILED_LAUNCH_EVENTS", ","), nil, "PROFILED_LAUNCH_EVENTS"},
		{"missing brokers", map[string]string{"PROFILED_REDIS_URL": "redis://r:6379/0"}, nil, "PROFILED_KAFKA_BROKERS"},
		{"missing redis", map[string]string{"PROFILED_KAFKA_BROKERS": "k:1"}, nil, "PROFILED_REDIS_URL"},
		{"missing both", map[string]string{}, nil, "PROFILED_KAFKA_BROKERS"},
		{"embedded false missing brokers", map[string]string{"PROFILED_EMBEDDED": "false", "PROFILED_REDIS_URL": "redis://r:6379/0"}, nil, "PROFILED_KAFKA_BROKERS"},
		// every broker is host:port
		{"brokers garbage", minimal("PROFILED_KAFKA_BROKERS", "garbage"), nil, "PROFILED_KAFKA_BROKERS"},
		{"brokers one of two garbage", minimal("PROFILED_KAFKA_BROKERS", "k1:9092,garbage"), nil, "PROFILED_KAFKA_BROKERS"},
		{"broker without host", minimal("PROFILED_KAFKA_BROKERS", ":9092"), nil, "PROFILED_KAFKA_BROKERS"},
		{"broker without port", minimal("PROFILED_KAFKA_BROKERS", "k1:"), nil, "PROFILED_KAFKA_BROKERS"},
		{"broker port not a number", minimal("PROFILED_KAFKA_BROKERS", "k1:kafka"), nil, "PROFILED_KAFKA_BROKERS"},
		{"broker port too big", minimal("PROFILED_KAFKA_BROKERS", "k1:70000"), nil, "PROFILED_KAFKA_BROKERS"},
		{"broker url", minimal("PROFILED_KAFKA_BROKERS", "kafka://k1:9092"), nil, "PROFILED_KAFKA_BROKERS"},
		{"cluster addr garbage", map[string]string{"PROFILED_KAFKA_BROKERS": "k:1", "PROFILED_REDIS_CLUSTER_ADDRS": "r1:7000,r2"}, nil, "PROFILED_REDIS_CLUSTER_ADDRS"},
		{"sentinel addr garbage", map[string]string{"PROFILED_KAFKA_BROKERS": "k:1", "PROFILED_REDIS_SENTINEL_ADDRS": "s1", "PROFILED_REDIS_SENTINEL_MASTER": "m"}, nil, "PROFILED_REDIS_SENTINEL_ADDRS"},
		// TLS file settings without TLS would leave the connection plain text
		{"tls ca file without tls", minimal("PROFILED_KAFKA_TLS_CA_FILE", "/ca.pem"), nil, "PROFILED_KAFKA_TLS_CA_FILE"},
		{"tls ca file with tls false", minimal("PROFILED_KAFKA_TLS_CA_FILE", "/ca.pem", "PROFILED_KAFKA_TLS", "false"), nil, "PROFILED_KAFKA_TLS_CA_FILE"},
		{"tls cert and key without tls", minimal("PROFILED_KAFKA_TLS_CERT_FILE", "/c.pem", "PROFILED_KAFKA_TLS_KEY_FILE", "/k.pem"), nil, "PROFILED_KAFKA_TLS_CERT_FILE"},
		{"tls key without tls", minimal("PROFILED_KAFKA_TLS_KEY_FILE", "/k.pem"), nil, "PROFILED_KAFKA_TLS_KEY_FILE"},
		{"skip verify without tls", minimal("PROFILED_KAFKA_TLS_INSECURE_SKIP_VERIFY", "true"), nil, "PROFILED_KAFKA_TLS_INSECURE_SKIP_VERIFY"},
		{"tls ca file missing", minimal("PROFILED_KAFKA_TLS", "true", "PROFILED_KAFKA_TLS_CA_FILE", "/no/such/ca.pem"), nil, "PROFILED_KAFKA_TLS_CA_FILE"},
		// the key prefix: braces are the Cluster hash tag, pattern
		// characters break SCAN MATCH
		{"key prefix open brace", minimal("PROFILED_REDIS_KEY_PREFIX", "{app}:"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix close brace", minimal("PROFILED_REDIS_KEY_PREFIX", "app}"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix star", minimal("PROFILED_REDIS_KEY_PREFIX", "app*:"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix question mark", minimal("PROFILED_REDIS_KEY_PREFIX", "app?:"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix open bracket", minimal("PROFILED_REDIS_KEY_PREFIX", "app[1]:"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix close bracket", minimal("PROFILED_REDIS_KEY_PREFIX", "app]:"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix backslash", minimal("PROFILED_REDIS_KEY_PREFIX", `app\:`), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix newline", minimal("PROFILED_REDIS_KEY_PREFIX", "app\n:"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix control character", minimal("PROFILED_REDIS_KEY_PREFIX", "app\x01:"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		{"key prefix invalid utf-8", minimal("PROFILED_REDIS_KEY_PREFIX", "app\xff:"), nil, "PROFILED_REDIS_KEY_PREFIX"},
		// the bounds and the durability setting
		{"max linked ids zero", minimal("PROFILED_MAX_LINKED_IDS", "0"), nil, "PROFILED_MAX_LINKED_IDS"},
		{"max linked ids negative", minimal("PROFILED_MAX_LINKED_IDS", "-5"), nil, "PROFILED_MAX_LINKED_IDS"},
		{"max linked ids not a number", minimal("PROFILED_MAX_LINKED_IDS", "many"), nil, "PROFILED_MAX_LINKED_IDS"},
		{"max dedupe ids zero", minimal("PROFILED_MAX_DEDUPE_IDS", "0"), nil, "PROFILED_MAX_DEDUPE_IDS"},
		{"max dedupe ids negative", minimal("PROFILED_MAX_DEDUPE_IDS", "-1"), nil, "PROFILED_MAX_DEDUPE_IDS"},
		{"min replicas negative", minimal("PROFILED_REDIS_MIN_REPLICAS", "-1"), nil, "PROFILED_REDIS_MIN_REPLICAS"},
		{"min replicas not a number", minimal("PROFILED_REDIS_MIN_REPLICAS", "one"), nil, "PROFILED_REDIS_MIN_REPLICAS"},
		{"min replicas with the embedded redis", map[string]string{"PROFILED_EMBEDDED": "true", "PROFILED_REDIS_MIN_REPLICAS": "1"}, nil, "PROFILED_REDIS_MIN_REPLICAS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.args, envOf(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("error %q does not name %s", err, tc.names)
			}
		})
	}
}

func TestConfigEmbeddedNeedsNoBrokersOrRedis(t *testing.T) {
	for _, env := range []map[string]string{
		{"PROFILED_EMBEDDED": "true"},
		{"PROFILED_EMBEDDED": "true", "PROFILED_KAFKA_BROKERS": "k:1"},
		{"PROFILED_EMBEDDED": "true", "PROFILED_REDIS_URL": "redis://r:6379/0"},
	} {
		c, err := loadConfig(nil, envOf(env), io.Discard)
		if err != nil {
			t.Errorf("%v: %v", env, err)
			continue
		}
		if !c.Embedded {
			t.Errorf("%v: Embedded false", env)
		}
	}
	// the flag turns it on too (boolean settings are string flags: a bare
	// --embedded is refused, so give it a value)
	if _, err := loadConfig([]string{"--embedded=true"}, envOf(nil), io.Discard); err != nil {
		t.Errorf("--embedded=true: %v", err)
	}
}

func TestConfigHelpListsEveryContractName(t *testing.T) {
	var out bytes.Buffer
	_, err := loadConfig([]string{"--help"}, envOf(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: err %v, want flag.ErrHelp", err)
	}
	help := out.String()
	for _, name := range []string{
		"PROFILED_KAFKA_BROKERS", "PROFILED_KAFKA_TOPICS", "PROFILED_KAFKA_GROUP", "PROFILED_KAFKA_START_OFFSET",
		"PROFILED_DLQ_TOPIC", "PROFILED_REDIS_URL", "PROFILED_REDIS_CLUSTER_ADDRS", "PROFILED_REDIS_SENTINEL_ADDRS",
		"PROFILED_REDIS_SENTINEL_MASTER", "PROFILED_REDIS_KEY_PREFIX", "PROFILED_HTTP_ADDR", "PROFILED_LOG_LEVEL",
		"PROFILED_LOG_FORMAT", "PROFILED_LAUNCH_EVENTS", "PROFILED_DEDUPE_WINDOW", "PROFILED_MAX_EVENT_BYTES",
		"PROFILED_MAX_CLOCK_SKEW", "PROFILED_DEFAULT_PHONE_REGION", "PROFILED_SHUTDOWN_TIMEOUT", "PROFILED_EMBEDDED",
		"PROFILED_KAFKA_SASL_MECHANISM", "PROFILED_KAFKA_SASL_USERNAME", "PROFILED_KAFKA_SASL_PASSWORD",
		"PROFILED_KAFKA_TLS", "PROFILED_KAFKA_TLS_CA_FILE", "PROFILED_KAFKA_TLS_CERT_FILE", "PROFILED_KAFKA_TLS_KEY_FILE",
		"PROFILED_BATCH_SIZE", "PROFILED_BATCH_TIME",
		"PROFILED_MAX_LINKED_IDS", "PROFILED_MAX_DEDUPE_IDS", "PROFILED_REDIS_MIN_REPLICAS",
		"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512",
	} {
		if !strings.Contains(help, name) {
			t.Errorf("--help does not list %s", name)
		}
	}
	// every documented default is shown
	for _, s := range settings {
		if !strings.Contains(help, "--"+s.name) || !strings.Contains(help, envName(s.name)) {
			t.Errorf("--help does not list --%s / %s", s.name, envName(s.name))
		}
	}
}

func TestConfigHelpThroughRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"--help"}, envOf(nil), &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run --help: %v, want flag.ErrHelp (exit 0)", err)
	}
	if !strings.Contains(stderr.String()+stdout.String(), "PROFILED_KAFKA_BROKERS") {
		t.Errorf("run --help output lacks PROFILED_KAFKA_BROKERS:\n%s%s", stdout.String(), stderr.String())
	}
}

func TestConfigRedactedHidesSecrets(t *testing.T) {
	const (
		saslSecret  = "sasl-s3cret-value"
		redisSecret = "redis-pw-s3cret"
		urlSecret   = "url-pw-s3cret"
	)
	cases := []struct {
		name string
		env  map[string]string
		args []string
		keep []string // must still appear somewhere
	}{
		{"url password", map[string]string{
			"PROFILED_KAFKA_BROKERS":        "k1:9092",
			"PROFILED_REDIS_URL":            "redis://alice:" + urlSecret + "@redis.internal:6380/2",
			"PROFILED_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
			"PROFILED_KAFKA_SASL_USERNAME":  "svc",
			"PROFILED_KAFKA_SASL_PASSWORD":  saslSecret,
		}, nil, []string{"redis.internal:6380", "svc", "SCRAM-SHA-256", "k1:9092"}},
		{"url password only, rediss", map[string]string{
			"PROFILED_KAFKA_BROKERS": "k1:9092",
			"PROFILED_REDIS_URL":     "rediss://:" + urlSecret + "@redis.internal:6380/0",
		}, nil, []string{"rediss://", "redis.internal:6380"}},
		{"url from flag", map[string]string{
			"PROFILED_KAFKA_BROKERS": "k1:9092",
			"PROFILED_REDIS_URL":     "redis://r:6379/0",
		}, []string{"--redis-url", "redis://u:" + urlSecret + "@flaghost:7000/1", "--kafka-sasl-password", saslSecret, "--kafka-sasl-mechanism=PLAIN", "--kafka-sasl-username=u"},
			[]string{"flaghost:7000"}},
		{"redis password with cluster", map[string]string{
			"PROFILED_KAFKA_BROKERS":       "k1:9092",
			"PROFILED_REDIS_CLUSTER_ADDRS": "c1:7000,c2:7001",
			"PROFILED_REDIS_USERNAME":      "acl-user",
			"PROFILED_REDIS_PASSWORD":      redisSecret,
		}, nil, []string{"c1:7000", "c2:7001", "acl-user"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.args, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			red := c.redacted()
			var all strings.Builder
			for _, k := range sortedKeys(red) {
				all.WriteString(k + "=" + red[k] + "\n")
			}
			for _, secret := range []string{saslSecret, redisSecret, urlSecret} {
				if strings.Contains(all.String(), secret) {
					t.Errorf("redacted configuration shows a secret %q:\n%s", secret, all.String())
				}
			}
			for _, k := range tc.keep {
				if !strings.Contains(all.String(), k) {
					t.Errorf("redacted configuration lost %q:\n%s", k, all.String())
				}
			}
			if len(red) != len(settings) {
				t.Errorf("redacted has %d settings, want %d", len(red), len(settings))
			}
		})
	}
}

// An invalid start's error never repeats a secret either.
func TestConfigErrorNeverShowsASecret(t *testing.T) {
	const secret = "pw-in-url-s3cret"
	env := map[string]string{
		"PROFILED_KAFKA_BROKERS":       "k1:9092",
		"PROFILED_REDIS_URL":           "redis://u:" + secret + "@r:6379/0",
		"PROFILED_REDIS_CLUSTER_ADDRS": "c1:7000",
	}
	_, err := loadConfig(nil, envOf(env), io.Discard)
	if err == nil {
		t.Fatal("URL and cluster together accepted")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the secret: %v", err)
	}
}

// Errors carry the path of the rule that refused the value as well as the
// setting's names.
func TestConfigErrorCarriesThePath(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want []string
	}{
		{minimal("PROFILED_BATCH_SIZE", "0"), []string{"PROFILED_BATCH_SIZE", "--batch-size", "consumer: batch size:"}},
		{minimal("PROFILED_KAFKA_START_OFFSET", "middle"), []string{"PROFILED_KAFKA_START_OFFSET", "consumer: start offset:"}},
		{minimal("PROFILED_DEFAULT_PHONE_REGION", "XX"), []string{"PROFILED_DEFAULT_PHONE_REGION", "profile: default phone region:"}},
		{minimal("PROFILED_REDIS_KEY_PREFIX", "{x}"), []string{"PROFILED_REDIS_KEY_PREFIX", "sink: key prefix:", "hash tag"}},
		{minimal("PROFILED_REDIS_KEY_PREFIX", "a*"), []string{"PROFILED_REDIS_KEY_PREFIX", "sink: key prefix:", "SCAN MATCH"}},
		{minimal("PROFILED_MAX_DEDUPE_IDS", "0"), []string{"PROFILED_MAX_DEDUPE_IDS", "sink: max dedupe ids:"}},
		{minimal("PROFILED_KAFKA_SASL_MECHANISM", "PLAIN"), []string{"PROFILED_KAFKA_SASL_USERNAME", "kafka: sasl: username"}},
		{minimal("PROFILED_KAFKA_BROKERS", "garbage"), []string{"PROFILED_KAFKA_BROKERS", `"garbage"`, "host:port"}},
		{minimal("PROFILED_KAFKA_TLS_CA_FILE", "/ca.pem"), []string{"PROFILED_KAFKA_TLS_CA_FILE", "PROFILED_KAFKA_TLS=true"}},
	}
	for _, tc := range cases {
		_, err := loadConfig(nil, envOf(tc.env), io.Discard)
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	}
}

func TestConfigAcceptsWhatTheRulesAllow(t *testing.T) {
	for _, env := range []map[string]string{
		minimal("PROFILED_REDIS_KEY_PREFIX", "app:v1/"),
		minimal("PROFILED_REDIS_KEY_PREFIX", "tenant-7 \u00e9:"),
		minimal("PROFILED_KAFKA_BROKERS", "k1:9092, [::1]:9093,kafka-0.kafka.svc.cluster.local:9094"),
		minimal("PROFILED_KAFKA_TLS", "true", "PROFILED_KAFKA_TLS_INSECURE_SKIP_VERIFY", "true"),
		minimal("PROFILED_KAFKA_TLS", "false", "PROFILED_KAFKA_TLS_INSECURE_SKIP_VERIFY", "false"),
		minimal("PROFILED_MAX_LINKED_IDS", "1", "PROFILED_MAX_DEDUPE_IDS", "1", "PROFILED_REDIS_MIN_REPLICAS", "2"),
		{"PROFILED_EMBEDDED": "true", "PROFILED_REDIS_URL": "redis://r:6379/0", "PROFILED_REDIS_MIN_REPLICAS": "1"},
	} {
		if _, err := loadConfig(nil, envOf(env), io.Discard); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
}

func TestConfigNewSettingsReachTheSink(t *testing.T) {
	c, err := loadConfig([]string{"--max-linked-ids=7"}, envOf(minimal(
		"PROFILED_MAX_DEDUPE_IDS", "500", "PROFILED_REDIS_MIN_REPLICAS", "1", "PROFILED_MAX_LINKED_IDS", "9")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sink.MaxLinkedIDs != 7 || c.Sink.MaxDedupeIDs != 500 || c.Sink.MinReplicas != 1 {
		t.Errorf("sink config %+v, want MaxLinkedIDs 7 (the flag wins), MaxDedupeIDs 500, MinReplicas 1", c.Sink)
	}
}

func TestUnknownVariablesAreReportedExceptTestTools(t *testing.T) {
	environ := []string{
		"PROFILED_KAFKA_BROKER=k:1",     // typo of PROFILED_KAFKA_BROKERS
		"PROFILED_BATCHSIZE=10",         // typo of PROFILED_BATCH_SIZE
		"PROFILED_KAFKA_BROKERS=k:9092", // a setting
		"PROFILED_EMBEDDED_SAMPLE=x",    // a setting
		"PROFILED_TEST_KAFKA_BROKERS=k:1",
		"PROFILED_TEST_STALL_BEFORE_COMMIT=/tmp/x",
		"PROFILED_FAULTS=1",
		"PROFILED_FAULTS_SEED=7",
		"PROFILED_HELM=/bin/helm",
		"PROFILED_DEPLOY_RENDERED=/x.yaml",
		"PROFILED_CACHE=/c",
		"HOME=/root",
		"NOT_PROFILED_X=1",
	}
	got := unknownVariables(environ)
	want := []string{"PROFILED_BATCHSIZE", "PROFILED_KAFKA_BROKER"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unknown variables %v, want %v", got, want)
	}
}

// A typo is warned about in the start-up log, by run itself.
func TestRunWarnsAboutAnUnknownVariable(t *testing.T) {
	var stdout, stderr testenv.Buffer
	env := map[string]string{"PROFILED_KAFKA_BROKERS": "k1:9092", "PROFILED_REDIS_URL": "redis://r:1/0",
		"PROFILED_REDIS_KEY_PREFX": "typo:", "PROFILED_HTTP_ADDR": "not an address"}
	err := run(t.Context(), nil, envOf(env), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "PROFILED_HTTP_ADDR") {
		t.Fatalf("run: %v, want the bad HTTP address named", err)
	}
	if !strings.Contains(stdout.String(), "PROFILED_REDIS_KEY_PREFX") || !strings.Contains(stdout.String(), "unknown PROFILED_* variable") {
		t.Errorf("no warning about PROFILED_REDIS_KEY_PREFX:\n%s", stdout.String())
	}
}

// The README's Configuration section documents every setting.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	for _, s := range settings {
		if !strings.Contains(section, "`"+envName(s.name)+"`") {
			t.Errorf("README, Configuration: %s is not documented", envName(s.name))
		}
	}
}
