package kafka_test

import (
	"testing"
	"time"

	"github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/internal/testenv"
)

// TestConfigValidate is the table of Config's rules; it stands outside
// package kafka so that it can use testenv, which imports kafka.
func TestConfigValidate(t *testing.T) {
	ok := kafka.Config{Brokers: []string{"127.0.0.1:9092"}}
	with := func(f func(*kafka.Config)) kafka.Config { c := ok; f(&c); return c }
	for _, c := range []struct {
		name string
		cfg  kafka.Config
		want string // "" for valid; else a part of the error
	}{
		{"brokers only", ok, ""},
		{"no brokers", kafka.Config{}, "brokers: at least one required"},
		{"an empty broker", with(func(c *kafka.Config) { c.Brokers = []string{"a:1", " "} }), "brokers: empty address"},
		{"negative dial timeout", with(func(c *kafka.Config) { c.DialTimeout = -time.Second }), "dial timeout"},
		{"plain", with(func(c *kafka.Config) { c.SASLMechanism, c.SASLUsername = kafka.SASLPlain, "u" }), ""},
		{"scram-256", with(func(c *kafka.Config) { c.SASLMechanism, c.SASLUsername = kafka.SASLSCRAMSHA256, "u" }), ""},
		{"scram-512 in lower case", with(func(c *kafka.Config) { c.SASLMechanism, c.SASLUsername = "scram-sha-512", "u" }), ""},
		{"sasl without a user", with(func(c *kafka.Config) { c.SASLMechanism = kafka.SASLPlain }), "sasl: username required"},
		{"unknown mechanism", with(func(c *kafka.Config) { c.SASLMechanism, c.SASLUsername = "GSSAPI", "u" }), `sasl: mechanism "GSSAPI"`},
		{"a password alone is no mechanism", with(func(c *kafka.Config) { c.SASLPassword = "p" }), ""},
	} {
		testenv.WantError(t, c.name, c.cfg.Validate(), c.want)
	}
}
