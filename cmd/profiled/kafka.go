package main

// The Kafka side of the settings: mapping them onto the client's
// connection, and naming the setting to fix when the broker refuses one.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
)

// conn maps the Kafka settings onto the consumer's connection: the one
// place that knows both, so that a move of the Conn type changes only this
// function. It checks what the Conn does not: every broker is host:port,
// and no TLS setting is given without TLS (it would be ignored, and the
// connection would be plain text).
func (k kafkaSettings) conn() (kafkaconn.Config, error) {
	for _, b := range k.Brokers {
		if err := hostPort(b); err != nil {
			return kafkaconn.Config{}, named("kafka-brokers", err)
		}
	}
	if !k.TLS {
		for _, s := range []struct {
			name string
			set  bool
		}{
			{"kafka-tls-ca-file", k.TLSCAFile != ""},
			{"kafka-tls-cert-file", k.TLSCertFile != ""},
			{"kafka-tls-key-file", k.TLSKeyFile != ""},
			{"kafka-tls-insecure-skip-verify", k.TLSSkipVerify},
		} {
			if s.set {
				return kafkaconn.Config{}, named(s.name, errors.New("set without PROFILED_KAFKA_TLS=true, so it would be ignored and the connection plain text: set PROFILED_KAFKA_TLS=true, or remove this setting"))
			}
		}
	}
	if (k.TLSCertFile == "") != (k.TLSKeyFile == "") {
		return kafkaconn.Config{}, named("kafka-tls-cert-file", errors.New("a client certificate needs its key, and a key its certificate"))
	}
	t, err := k.tlsConfig()
	if err != nil {
		return kafkaconn.Config{}, err
	}
	c := kafkaconn.Config{
		Brokers: k.Brokers, SASLMechanism: k.SASLMechanism,
		SASLUsername: k.SASLUsername, SASLPassword: k.SASLPassword, TLS: t,
	}
	if len(c.Brokers) > 0 {
		if err := c.Validate(); err != nil {
			return kafkaconn.Config{}, nameSetting("kafka", err)
		}
	}
	return c, nil
}

// tlsConfig builds the Kafka TLS configuration, or nil without TLS.
func (k kafkaSettings) tlsConfig() (*tls.Config, error) {
	if !k.TLS {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.TLSSkipVerify} //nolint:gosec // opt-in for testing
	if k.TLSCAFile != "" {
		pem, err := os.ReadFile(k.TLSCAFile)
		if err != nil {
			return nil, named("kafka-tls-ca-file", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, named("kafka-tls-ca-file", errors.New("no PEM certificate found"))
		}
		t.RootCAs = pool
	}
	if k.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(k.TLSCertFile, k.TLSKeyFile)
		if err != nil {
			return nil, named("kafka-tls-cert-file", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// kafkaSettingError returns err naming the setting to fix when Kafka refused
// what only a setting can fix, or nil for anything else, which is waited
// for as an outage. With the client mapping in kafkaSettings.conn, this is
// all main knows about the Kafka clients.
func kafkaSettingError(err error) error {
	var ke *kerr.Error
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	switch {
	case errors.Is(err, kafkaconn.ErrUnknownTopic):
		return named("kafka-topics", err)
	case errors.Is(err, kafka.InvalidSessionTimeout):
		return named("kafka-session-timeout", fmt.Errorf("the broker refuses it (its group.min.session.timeout.ms and group.max.session.timeout.ms bound it): %w", err))
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid):
		return named("kafka-tls-ca-file", fmt.Errorf("the broker's certificate is not trusted: %w", err))
	case errors.As(err, &header):
		return named("kafka-tls", fmt.Errorf("the broker does not speak TLS on this port: %w", err))
	case errors.As(err, &ke) && (ke.Code == kerr.SaslAuthenticationFailed.Code || ke.Code == kerr.UnsupportedSaslMechanism.Code || ke.Code == kerr.IllegalSaslState.Code):
		return named("kafka-sasl-mechanism", fmt.Errorf("the broker refused the SASL mechanism, user name or password: %w", err))
	case errors.As(err, &ke) && !ke.Retriable:
		return fmt.Errorf("kafka refused: %w", err)
	}
	return nil
}
