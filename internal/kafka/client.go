package kafka

import (
	"fmt"

	"github.com/segmentio/kafka-go"
	kafkasasl "github.com/segmentio/kafka-go/sasl"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaGoSASL returns kafka-go's mechanism, or nil without SASL.
func (c Config) kafkaGoSASL() (kafkasasl.Mechanism, error) {
	if c.SASLMechanism == "" {
		return nil, nil
	}
	m, ok := lookupSASL(c.SASLMechanism)
	if !ok {
		return nil, fmt.Errorf("sasl: unknown mechanism %q", c.SASLMechanism)
	}
	return m.kafkaGo(c.SASLUsername, c.SASLPassword)
}

// Dialer returns a kafka-go dialer for readers and the consumer group.
func (c Config) Dialer() (*kafka.Dialer, error) {
	mech, err := c.kafkaGoSASL()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{Timeout: c.dialTimeout(), DualStack: true, SASLMechanism: mech, TLS: c.TLS}, nil
}

// Transport returns a kafka-go transport for writers and kafka.Client.
func (c Config) Transport() (*kafka.Transport, error) {
	mech, err := c.kafkaGoSASL()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{DialTimeout: c.dialTimeout(), SASL: mech, TLS: c.TLS}, nil
}

// adminOpts are the franz-go options for the same connection.
func (c Config) adminOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.RequestRetries(2), kgo.DialTimeout(c.dialTimeout())}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	if c.SASLMechanism != "" {
		m, ok := lookupSASL(c.SASLMechanism)
		if !ok {
			return nil, fmt.Errorf("sasl: unknown mechanism %q", c.SASLMechanism)
		}
		opts = append(opts, kgo.SASL(m.franz(c.SASLUsername, c.SASLPassword)))
	}
	return opts, nil
}

// adminClient returns a franz-go client for the requests kafka-go cannot
// make: topic IDs (Metadata v10+) and topic configs.
func (c Config) adminClient() (*kgo.Client, error) {
	opts, err := c.adminOpts()
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(opts...)
}
