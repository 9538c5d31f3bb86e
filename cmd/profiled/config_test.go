package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envOf returns a getenv over m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
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
		{"kafka topics", c.KafkaTopics, []string{"events"}},
		{"kafka group", c.KafkaGroup, "profiled"},
		{"start offset", c.KafkaStartOffset, "earliest"},
		{"dlq topic", c.DLQTopic, "profiled-dlq"},
		{"dedupe window", c.DedupeWindow, 24 * time.Hour},
		{"max event bytes", c.MaxEventBytes, 32768},
		{"max clock skew", c.MaxClockSkew, 24 * time.Hour},
		{"shutdown timeout", c.ShutdownTimeout, 25 * time.Second},
		{"log format", c.LogFormat, "json"},
		{"log level", c.LogLevel, "info"},
		{"embedded", c.Embedded, false},
		{"launch events", c.LaunchEvents, []string{"Application Opened", "App Launched"}},
		{"kafka brokers", c.KafkaBrokers, []string{"k1:9092"}},
		{"redis url", c.RedisURL, "redis://r1:6379/0"},
		{"default phone region", c.DefaultPhoneRegion, ""},
		{"kafka tls", c.KafkaTLS, false},
		{"sasl mechanism", c.KafkaSASLMechanism, ""},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	if c.BatchSize < 1 {
		t.Errorf("batch size default %d, want positive", c.BatchSize)
	}
	if c.BatchTime <= 0 {
		t.Errorf("batch time default %s, want positive", c.BatchTime)
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
			func(c *config) any { return c.KafkaGroup }, "g-env"},
		{"group flag beats variable", minimal("PROFILED_KAFKA_GROUP", "g-env"), []string{"--kafka-group", "g-flag"},
			func(c *config) any { return c.KafkaGroup }, "g-flag"},
		{"topics from variable", minimal("PROFILED_KAFKA_TOPICS", "a, b,,c"), nil,
			func(c *config) any { return c.KafkaTopics }, []string{"a", "b", "c"}},
		{"topics flag beats variable", minimal("PROFILED_KAFKA_TOPICS", "a,b"), []string{"-kafka-topics=x"},
			func(c *config) any { return c.KafkaTopics }, []string{"x"}},
		{"batch size from variable", minimal("PROFILED_BATCH_SIZE", "42"), nil,
			func(c *config) any { return c.BatchSize }, 42},
		{"batch size flag beats variable", minimal("PROFILED_BATCH_SIZE", "42"), []string{"--batch-size=7"},
			func(c *config) any { return c.BatchSize }, 7},
		{"batch time from variable", minimal("PROFILED_BATCH_TIME", "20ms"), nil,
			func(c *config) any { return c.BatchTime }, 20 * time.Millisecond},
		{"dedupe window flag beats variable", minimal("PROFILED_DEDUPE_WINDOW", "1h"), []string{"--dedupe-window", "0"},
			func(c *config) any { return c.DedupeWindow }, time.Duration(0)},
		{"log format from variable", minimal("PROFILED_LOG_FORMAT", "console"), nil,
			func(c *config) any { return c.LogFormat }, "console"},
		{"log level flag beats variable", minimal("PROFILED_LOG_LEVEL", "debug"), []string{"--log-level=warn"},
			func(c *config) any { return c.LogLevel }, "warn"},
		{"start offset from variable", minimal("PROFILED_KAFKA_START_OFFSET", "latest"), nil,
			func(c *config) any { return c.KafkaStartOffset }, "latest"},
		{"phone region from variable, upper-cased", minimal("PROFILED_DEFAULT_PHONE_REGION", "in"), nil,
			func(c *config) any { return c.DefaultPhoneRegion }, "IN"},
		{"brokers flag beats variable", minimal(), []string{"--kafka-brokers", "f1:9092,f2:9092"},
			func(c *config) any { return c.KafkaBrokers }, []string{"f1:9092", "f2:9092"}},
		{"sasl from variables", minimal("PROFILED_KAFKA_SASL_MECHANISM", "scram-sha-512", "PROFILED_KAFKA_SASL_USERNAME", "u"), nil,
			func(c *config) any { return c.KafkaSASLMechanism }, "SCRAM-SHA-512"},
		{"shutdown timeout from variable", minimal("PROFILED_SHUTDOWN_TIMEOUT", "5s"), nil,
			func(c *config) any { return c.ShutdownTimeout }, 5 * time.Second},
		{"cluster instead of url", map[string]string{"PROFILED_KAFKA_BROKERS": "k:1", "PROFILED_REDIS_CLUSTER_ADDRS": "r1:7000,r2:7000"}, nil,
			func(c *config) any { return c.RedisClusterAddrs }, []string{"r1:7000", "r2:7000"}},
		{"sentinel with master", map[string]string{"PROFILED_KAFKA_BROKERS": "k:1", "PROFILED_REDIS_SENTINEL_ADDRS": "s1:26379", "PROFILED_REDIS_SENTINEL_MASTER": "mymaster"}, nil,
			func(c *config) any { return c.RedisSentinelMaster }, "mymaster"},
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
			getenv := envOf(tc.env)
			c, err := loadConfig(tc.args, getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			red := c.redacted(getenv, tc.args)
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
