package sink

import (
	"testing"

	"github.com/profiled/profiled/internal/testenv"
)

func TestConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.DedupeWindow.Hours() != 24 || c.MaxDedupeIDs != 10000 || c.MaxLinkedIDs != 100 || c.MinReplicas != 0 || c.KeyPrefix != "" {
		t.Errorf("DefaultConfig() = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults are invalid: %v", err)
	}
	var zero Config
	zero.setDefaults()
	if zero.DedupeWindow != 0 || zero.MaxDedupeIDs != 10000 || zero.MaxLinkedIDs != 100 {
		t.Errorf("setDefaults on a zero Config = %+v: bounds filled, dedupe window kept off", zero)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	with := func(f func(*Config)) Config { c := ok; f(&c); return c }
	cases := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"defaults", ok, ""},
		{"plain prefix", with(func(c *Config) { c.KeyPrefix = "app:v1/" }), ""},
		{"unicode prefix", with(func(c *Config) { c.KeyPrefix = "tenant-é:" }), ""},
		{"dedupe off", with(func(c *Config) { c.DedupeWindow = 0 }), ""},
		{"replicas", with(func(c *Config) { c.MinReplicas = 2 }), ""},
		{"open brace", with(func(c *Config) { c.KeyPrefix = "{app}:" }), "key prefix: must not contain { or }"},
		{"close brace", with(func(c *Config) { c.KeyPrefix = "app}" }), "key prefix: must not contain { or }"},
		{"star", with(func(c *Config) { c.KeyPrefix = "a*" }), "key prefix: must not contain *"},
		{"question mark", with(func(c *Config) { c.KeyPrefix = "a?" }), "key prefix: must not contain *"},
		{"open bracket", with(func(c *Config) { c.KeyPrefix = "a[" }), "key prefix: must not contain *"},
		{"close bracket", with(func(c *Config) { c.KeyPrefix = "a]" }), "key prefix: must not contain *"},
		{"backslash", with(func(c *Config) { c.KeyPrefix = `a\` }), "key prefix: must not contain *"},
		{"newline", with(func(c *Config) { c.KeyPrefix = "a\n" }), "key prefix: must not contain control"},
		{"delete", with(func(c *Config) { c.KeyPrefix = "a\x7f" }), "key prefix: must not contain control"},
		{"invalid utf-8", with(func(c *Config) { c.KeyPrefix = "a\xff" }), "key prefix: must be valid UTF-8"},
		{"negative window", with(func(c *Config) { c.DedupeWindow = -1 }), "dedupe window:"},
		{"no dedupe ids", with(func(c *Config) { c.MaxDedupeIDs = 0 }), "max dedupe ids:"},
		{"no linked ids", with(func(c *Config) { c.MaxLinkedIDs = 0 }), "max linked ids:"},
		{"negative replicas", with(func(c *Config) { c.MinReplicas = -1 }), "min replicas:"},
	}
	for _, tc := range cases {
		testenv.WantErrorPrefix(t, tc.name, tc.cfg.Validate(), tc.want)
	}
}
