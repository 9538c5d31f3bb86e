package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestDialTimeoutDefault(t *testing.T) {
	d, _ := Config{Brokers: []string{"b:1"}}.Dialer()
	tr, _ := Config{Brokers: []string{"b:1"}, DialTimeout: 3 * time.Second}.Transport()
	if d.Timeout != DefaultDialTimeout || tr.DialTimeout != 3*time.Second {
		t.Errorf("dialer %s, transport %s", d.Timeout, tr.DialTimeout)
	}
}

// TestSASLMapping checks that each mechanism name reaches both client
// libraries as that mechanism, from the one table.
func TestSASLMapping(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    string // the mechanism both clients announce; "" for none
		fails   bool
	}{
		{"", "", false},
		{"PLAIN", "PLAIN", false},
		{"plain", "PLAIN", false},
		{"SCRAM-SHA-256", "SCRAM-SHA-256", false},
		{"SCRAM-SHA-512", "SCRAM-SHA-512", false},
		{"Scram-Sha-512", "SCRAM-SHA-512", false},
		{"SCRAM-SHA-1", "", true},
		{"OAUTHBEARER", "", true},
	} {
		cfg := Config{Brokers: []string{"127.0.0.1:1"}, SASLMechanism: c.setting, SASLUsername: "u", SASLPassword: "p"}
		d, derr := cfg.Dialer()
		tr, terr := cfg.Transport()
		_, aerr := cfg.adminOpts()
		if c.fails {
			if derr == nil || terr == nil || aerr == nil {
				t.Errorf("%q: dialer %v, transport %v, admin %v: want three errors", c.setting, derr, terr, aerr)
			}
			continue
		}
		if derr != nil || terr != nil || aerr != nil {
			t.Fatalf("%q: dialer %v, transport %v, admin %v", c.setting, derr, terr, aerr)
		}
		if c.want == "" {
			if d.SASLMechanism != nil || tr.SASL != nil {
				t.Errorf("%q: kafka-go got a mechanism without SASL", c.setting)
			}
			continue
		}
		if d.SASLMechanism == nil || d.SASLMechanism.Name() != c.want || tr.SASL == nil || tr.SASL.Name() != c.want {
			t.Errorf("%q: kafka-go dialer %v, transport %v, want %s", c.setting, d.SASLMechanism, tr.SASL, c.want)
		}
		m, _ := lookupSASL(c.setting)
		if got := m.franz("u", "p").Name(); got != c.want {
			t.Errorf("%q: franz-go mechanism %s, want %s", c.setting, got, c.want)
		}
	}
	// every name Validate accepts has both clients
	for name, m := range saslMechanisms {
		if m.kafkaGo == nil || m.franz == nil {
			t.Errorf("%s lacks a client", name)
		}
	}
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, selfSigned(t), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		files TLSFiles
		want  string // "" for success
		none  bool   // Load returns no configuration
	}{
		{"off", TLSFiles{CAFile: "/nonexistent"}, "", true},
		{"on, system CAs", TLSFiles{Enabled: true}, "", false},
		{"on, own CA", TLSFiles{Enabled: true, CAFile: ca}, "", false},
		{"missing CA file", TLSFiles{Enabled: true, CAFile: filepath.Join(dir, "none.pem")}, "tls: ca file", false},
		{"CA file without PEM", TLSFiles{Enabled: true, CAFile: junk}, "no PEM certificate", false},
		{"certificate without key", TLSFiles{Enabled: true, CertFile: ca}, "needs its key", false},
		{"key without certificate", TLSFiles{Enabled: true, KeyFile: ca}, "needs its key", false},
	} {
		cfg, err := c.files.Load()
		switch {
		case c.want != "":
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case (cfg == nil) != c.none:
			t.Errorf("%s: configuration %v", c.name, cfg)
		case cfg != nil && c.files.CAFile != "" && cfg.RootCAs == nil:
			t.Errorf("%s: the CA file was not used", c.name)
		}
	}
}

// selfSigned returns a PEM certificate.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestIsTemporary(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"retriable code", kafka.NotLeaderForPartition, true},
		{"retriable code, wrapped", fmt.Errorf("write: %w", kafka.RequestTimedOut), true},
		{"not authorised", kafka.TopicAuthorizationFailed, false},
		{"too large", kafka.MessageSizeTooLarge, false},
		{"write errors, all retriable", kafka.WriteErrors{nil, kafka.LeaderNotAvailable}, true},
		{"write errors, one fatal", kafka.WriteErrors{kafka.LeaderNotAvailable, kafka.TopicAuthorizationFailed}, false},
		{"connection reset", syscall.ECONNRESET, true},
		{"EOF", io.ErrUnexpectedEOF, true},
		{"unknown", errors.New("something"), true},
	} {
		if got := IsTemporary(c.err); got != c.want {
			t.Errorf("%s: IsTemporary(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestOffsetsLagAndCaughtUp(t *testing.T) {
	for _, c := range []struct {
		name     string
		offs     map[int]PartitionOffsets
		lag      int64
		caughtUp bool
	}{
		{"no partitions", nil, 0, true},
		{"empty partition, nothing committed", map[int]PartitionOffsets{0: {Committed: -1, End: 0}}, 0, true},
		{"nothing committed", map[int]PartitionOffsets{0: {Committed: -1, End: 7}}, 7, false},
		{"behind", map[int]PartitionOffsets{0: {Committed: 5, End: 7}, 1: {Committed: 3, End: 3}}, 2, false},
		{"at the end", map[int]PartitionOffsets{0: {Committed: 7, End: 7}, 1: {Committed: 3, End: 3}}, 0, true},
	} {
		var lag int64
		for _, po := range c.offs {
			lag += po.Lag()
		}
		if lag != c.lag || CaughtUp(c.offs) != c.caughtUp {
			t.Errorf("%s: lag %d, caught up %v; want %d, %v", c.name, lag, CaughtUp(c.offs), c.lag, c.caughtUp)
		}
	}
}
