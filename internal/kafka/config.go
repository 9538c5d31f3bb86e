// Package kafka is how profiled reaches a Kafka cluster: the connection
// settings (brokers, SASL, TLS) in one Config, the clients built from it,
// and the few admin calls the service and its tools need (topic ids,
// topic creation, a topic's size limit, a group's offsets, a ping).
//
// Two client libraries meet here: segmentio/kafka-go, which the consumer
// uses to read and write, and franz-go, used only for the requests kafka-go
// cannot make (topic ids need Metadata v10+, topic configs). Both are built
// from the same Config, with one table of SASL mechanisms, so that a
// setting can never reach one client and miss the other. franz-go does not
// leave this package.
package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// DefaultDialTimeout bounds a connection attempt when Config.DialTimeout
// is zero.
const DefaultDialTimeout = 10 * time.Second

// Config holds how to reach the Kafka cluster. The zero value of every
// field but Brokers is usable: no SASL, plaintext, the default timeout.
type Config struct {
	Brokers       []string
	SASLMechanism string // "" for none, else one of the SASL* constants (any case)
	SASLUsername  string
	SASLPassword  string
	TLS           *tls.Config // nil for plaintext
	DialTimeout   time.Duration
}

// Validate reports the first invalid connection setting, its path first
// ("sasl: username required").
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one required")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			return errors.New("brokers: empty address")
		}
	}
	if c.DialTimeout < 0 {
		return errors.New("dial timeout: must not be negative")
	}
	if c.SASLMechanism == "" {
		return nil
	}
	if _, ok := lookupSASL(c.SASLMechanism); !ok {
		return fmt.Errorf("sasl: mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	if c.SASLUsername == "" {
		return errors.New("sasl: username required")
	}
	return nil
}

func (c Config) dialTimeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return DefaultDialTimeout
}

// TLSFiles are TLS settings as an operator gives them: files on disk.
// Load turns them into the *tls.Config that Config.TLS takes.
type TLSFiles struct {
	Enabled            bool
	CAFile             string // PEM CAs to trust; empty for the system's
	CertFile, KeyFile  string // PEM client certificate and key, for mTLS
	InsecureSkipVerify bool   // for testing only
}

// Validate reports a setting that cannot work whatever the files hold.
func (f TLSFiles) Validate() error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return errors.New("tls: a client certificate needs its key, and a key its certificate")
	}
	return nil
}

// Load reads the files and returns the TLS configuration, or nil when TLS
// is not enabled.
func (f TLSFiles) Load() (*tls.Config, error) {
	if !f.Enabled {
		return nil, nil
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // opt-in, for testing
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: ca file %s: no PEM certificate found", f.CAFile)
		}
		t.RootCAs = pool
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
