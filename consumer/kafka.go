package consumer

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	kafkasasl "github.com/segmentio/kafka-go/sasl"
	kplain "github.com/segmentio/kafka-go/sasl/plain"
	kscram "github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	fplain "github.com/twmb/franz-go/pkg/sasl/plain"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLSCRAMSHA256 = "SCRAM-SHA-256"
	SASLSCRAMSHA512 = "SCRAM-SHA-512"
)

// Conn holds how to reach the Kafka cluster.
type Conn struct {
	Brokers       []string
	SASLMechanism string // "" for none
	SASLUsername  string
	SASLPassword  string
	TLS           *tls.Config // nil for plaintext
	DialTimeout   time.Duration
}

// Validate reports the first invalid connection setting.
func (c Conn) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one required")
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
	case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
		if c.SASLUsername == "" {
			return errors.New("sasl: username required")
		}
	default:
		return fmt.Errorf("sasl: mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	return nil
}

func (c Conn) mechanism() (kafkasasl.Mechanism, error) {
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		return nil, nil
	case SASLPlain:
		return kplain.Mechanism{Username: c.SASLUsername, Password: c.SASLPassword}, nil
	case SASLSCRAMSHA256:
		return kscram.Mechanism(kscram.SHA256, c.SASLUsername, c.SASLPassword)
	case SASLSCRAMSHA512:
		return kscram.Mechanism(kscram.SHA512, c.SASLUsername, c.SASLPassword)
	}
	return nil, fmt.Errorf("sasl: unknown mechanism %q", c.SASLMechanism)
}

// Dialer returns a kafka-go dialer for readers and the consumer group.
func (c Conn) Dialer() (*kafka.Dialer, error) {
	mech, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	timeout := c.DialTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &kafka.Dialer{Timeout: timeout, DualStack: true, SASLMechanism: mech, TLS: c.TLS}, nil
}

// Transport returns a kafka-go transport for writers.
func (c Conn) Transport() (*kafka.Transport, error) {
	mech, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	timeout := c.DialTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &kafka.Transport{DialTimeout: timeout, SASL: mech, TLS: c.TLS}, nil
}

// adminClient returns a franz-go client, used only for the metadata that
// kafka-go cannot ask for: topic IDs (Metadata v10+).
func (c Conn) adminClient() (*kgo.Client, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.RequestRetries(2)}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	var m sasl.Mechanism
	switch strings.ToUpper(c.SASLMechanism) {
	case SASLPlain:
		m = fplain.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsMechanism()
	case SASLSCRAMSHA256:
		m = fscram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha256Mechanism()
	case SASLSCRAMSHA512:
		m = fscram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha512Mechanism()
	}
	if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return kgo.NewClient(opts...)
}

// TopicInfo describes a topic as the broker reports it.
type TopicInfo struct {
	Name       string
	ID         string // hex topic ID; empty on brokers without topic IDs
	Partitions int
}

// ErrUnknownTopic is returned by DescribeTopics for a topic that does not exist.
var ErrUnknownTopic = errors.New("topic does not exist")

// DescribeTopics returns the topics' IDs and partition counts.
func (c Conn) DescribeTopics(ctx context.Context, topics []string) (map[string]TopicInfo, error) {
	cl, err := c.adminClient()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	out := make(map[string]TopicInfo, len(topics))
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("%s: %w", name, ErrUnknownTopic)
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		id := ""
		if t.TopicID != [16]byte{} {
			id = hex.EncodeToString(t.TopicID[:8])
		}
		out[name] = TopicInfo{Name: name, ID: id, Partitions: len(t.Partitions)}
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("%s: %w", t, ErrUnknownTopic)
		}
	}
	return out, nil
}

// CreateTopic creates a topic with the broker's default replication.
func (c Conn) CreateTopic(ctx context.Context, topic string, partitions int) error {
	cl, err := c.adminClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = int32(partitions)
	rt.ReplicationFactor = -1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 30000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}

// Ping checks that a broker accepts a connection.
func (c Conn) Ping(ctx context.Context) error {
	d, err := c.Dialer()
	if err != nil {
		return err
	}
	var last error
	for _, b := range c.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.ApiVersions()
			conn.Close()
			if err == nil {
				return nil
			}
		}
		last = err
	}
	return last
}

// isTemporary tells whether a Kafka error is worth retrying.
func isTemporary(err error) bool {
	if err == nil {
		return false
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil && !isTemporary(e) {
				return false
			}
		}
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return true // unknown errors (EOF, connection reset) are retried
}
