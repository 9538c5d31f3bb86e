// Package consumer reads the input topics as one Kafka consumer group with
// segmentio/kafka-go, folds each batch of records into per-profile updates,
// writes them through a Store, dead-letters the records the decoder rejects,
// and commits the offsets of what is done.
//
// It uses kafka-go's ConsumerGroup/Generation API rather than a Reader with
// a GroupID: a generation exposes its assignments and its commits are bound
// to it, so a batch fetched in one generation is never committed in another
// (kafka-go issue #1308 describes the stale-commit hazard of the Reader),
// and every partition reader stops before the next generation is joined.
//
// Guarantees, per partition: records are applied in offset order, one batch
// at a time; an offset is committed only after every earlier record was
// applied to the Store or acknowledged by the dead-letter topic; while the
// Store fails the batch is retried with capped exponential back-off and
// jitter and nothing more is taken from the readers, so memory stays bounded.
package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/profile"
)

// Store is where updates go: the Redis sink in production.
//
// Its contract: Apply writes every update of the slice, or returns an
// error; the consumer then calls it again with the same slice, after a
// back-off, until it succeeds (an error is always taken as temporary). So a
// repeated Apply, and an Apply of updates that were partly applied before,
// must be harmless: every Count is counted at most once (its Source and
// Offset identify it), and field merges are idempotent. The consumer calls
// Apply with one batch at a time; per Source, a batch's Counts follow the
// previous batch's in offset order. A Store records its own metrics.
type Store interface {
	Apply(ctx context.Context, updates []*profile.Update) error
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
}

// Start offsets of a group without committed offsets.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// Config configures the consumer. Zero durations and sizes take defaults.
type Config struct {
	Conn        kafkaconn.Config
	Topics      []string
	Group       string
	StartOffset string // earliest (default) or latest
	DLQTopic    string

	// BatchSize bounds the records of one batch; default 20000.
	BatchSize int
	// BatchTime is how long the first record of a batch may wait for more
	// while the writer is idle; default 1ms. While the writer is busy,
	// records gather anyway (natural batching), so batches grow with load
	// and latency stays low when the stream is light.
	BatchTime time.Duration
	// CommitInterval is the least time between two offset commits; the
	// offsets written meanwhile are committed together. Default 100ms.
	CommitInterval time.Duration

	// DrainTimeout bounds the work on a batch in hand once the generation
	// ends (rebalance or shutdown); default 10s.
	DrainTimeout time.Duration

	SessionTimeout    time.Duration // default 10s
	RebalanceTimeout  time.Duration // default 30s
	HeartbeatInterval time.Duration // default 1s

	RetryMin time.Duration // first back-off; default 100ms
	RetryMax time.Duration // back-off cap; default 5s

	// BeforeCommit, when set, runs after a batch is written and before its
	// offsets are committed. Fault-injection tests use it to crash the
	// process in exactly that window; production leaves it nil.
	BeforeCommit func()

	// OnBatch, when set, is called with each batch once it is written to
	// the store, before its offsets are committed; from one goroutine at a
	// time, in the order batches are written. The benchmark replays the
	// pipeline's own batches from it; production leaves it nil.
	OnBatch func(BatchInfo)
}

// BatchInfo describes one batch the consumer wrote.
type BatchInfo struct {
	Ranges   []OffsetRange `json:"ranges"`   // per partition, in order of first record
	Records  int           `json:"records"`  // records consumed, dead letters included
	Profiles int           `json:"profiles"` // profile updates applied
	Dead     int           `json:"dead"`     // records dead-lettered
}

// OffsetRange is the offsets First..Last of one partition, every record
// between them included.
type OffsetRange struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	First     int64  `json:"first"`
	Last      int64  `json:"last"`
}

func (c *Config) setDefaults() {
	c.StartOffset = cmp.Or(c.StartOffset, StartEarliest)
	c.BatchSize = cmp.Or(c.BatchSize, 20000)
	c.BatchTime = cmp.Or(c.BatchTime, time.Millisecond)
	c.CommitInterval = cmp.Or(c.CommitInterval, 100*time.Millisecond)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 10*time.Second)
	c.SessionTimeout = cmp.Or(c.SessionTimeout, 10*time.Second)
	c.RebalanceTimeout = cmp.Or(c.RebalanceTimeout, 30*time.Second)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, time.Second)
	c.RetryMin = cmp.Or(c.RetryMin, 100*time.Millisecond)
	c.RetryMax = cmp.Or(c.RetryMax, 5*time.Second)
}

// DefaultConfig returns the defaults New fills in for zero fields, for a
// command to start from and show; it names no brokers, topics or group.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if err := c.Conn.Validate(); err != nil {
		return err
	}
	switch {
	case len(c.Topics) == 0:
		return errors.New("topics: at least one required")
	case c.Group == "":
		return errors.New("group: required")
	case c.StartOffset != StartEarliest && c.StartOffset != StartLatest:
		return fmt.Errorf("start offset: %q: want earliest or latest", c.StartOffset)
	case c.DLQTopic == "":
		return errors.New("dlq topic: required")
	case c.BatchSize < 1 || c.BatchSize > 100000:
		return errors.New("batch size: want 1..100000")
	case c.BatchTime < 0:
		return errors.New("batch time: must not be negative")
	case c.CommitInterval < 0 || c.CommitInterval > 5*time.Second:
		return errors.New("commit interval: want 0..5s (offsets are committed within 5s)")
	case c.RetryMax < c.RetryMin:
		return errors.New("retry max: must not be below retry min")
	}
	for _, t := range c.Topics {
		if t == c.DLQTopic {
			return fmt.Errorf("dlq topic: %q is also an input topic", t)
		}
	}
	return nil
}

// Consumer runs the consumer group.
type Consumer struct {
	cfg   Config
	log   zerolog.Logger
	m     *Metrics
	dec   *profile.Decoder
	store Store
	dlq   *deadLetterer
	retry Backoff

	ids *topicIDs
	lag *lagGauges

	joined       atomic.Bool
	storeFailing atomic.Bool
	alive        atomic.Int64 // unix nanos of the loop's last sign of life
	// unfinished is why the last generation's drain left work undone
	// (nil: it did not).
	unfinished atomic.Pointer[error]
}

// New validates cfg and returns a Consumer. It does not contact Kafka.
func New(cfg Config, log zerolog.Logger, reg prometheus.Registerer, dec *profile.Decoder, store Store) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	transport, err := cfg.Conn.Transport()
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, log: log, m: NewMetrics(reg), dec: dec, store: store,
		ids:   &topicIDs{log: log, ids: map[string]string{}},
		retry: Backoff{Min: cfg.RetryMin, Max: cfg.RetryMax}}
	c.lag = &lagGauges{vec: c.m.consumerLag, set: map[topicPartition]bool{}}
	c.dlq = newDeadLetterer(cfg, transport, c.m, newRetrier(c.retry, log, "dead-letter write", c.touch))
	c.alive.Store(time.Now().UnixNano())
	return c, nil
}

// Prepare checks that the input topics exist, creates the dead-letter topic
// when it is missing, and learns the topics' IDs. Call it before Run.
func (c *Consumer) Prepare(ctx context.Context) error {
	infos, err := c.cfg.Conn.DescribeTopics(ctx, c.cfg.Topics)
	if err != nil {
		return fmt.Errorf("input topics: %w", err)
	}
	c.ids.set(infos)
	if _, err := c.cfg.Conn.DescribeTopics(ctx, []string{c.cfg.DLQTopic}); err != nil {
		if !errors.Is(err, kafkaconn.ErrUnknownTopic) {
			return fmt.Errorf("dead-letter topic: %w", err)
		}
		// Room for any record the input topics accept, plus the headers:
		// a record at the input's limit must not stop its partition.
		maxBytes, err := createDLQTopic(ctx, c.cfg.Conn, c.cfg.DLQTopic, c.cfg.Topics)
		if err != nil {
			return fmt.Errorf("dead-letter topic: %w", err)
		}
		c.log.Info().Str("topic", c.cfg.DLQTopic).Int(kafkaconn.TopicMaxMessageBytes, maxBytes).Msg("created the dead-letter topic")
	}
	return nil
}

// Alive reports whether the consumer loop showed a sign of life recently.
func (c *Consumer) Alive(within time.Duration) bool {
	return time.Since(time.Unix(0, c.alive.Load())) < within
}

// Ready reports why the consumer is not ready, or nil: it must have joined
// the group, its last write must have succeeded, and Kafka and the store
// must answer.
func (c *Consumer) Ready(ctx context.Context) error {
	if !c.joined.Load() {
		return errors.New("not a member of the consumer group")
	}
	if c.storeFailing.Load() {
		return errors.New("store writes are failing")
	}
	if err := c.store.Ping(ctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if err := c.cfg.Conn.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}

func (c *Consumer) touch() { c.alive.Store(time.Now().UnixNano()) }

// Run consumes until ctx is cancelled, then finishes and commits the batch
// in hand (bounded by DrainTimeout), leaves the group and returns. It
// returns an error when that last batch could not be finished.
func (c *Consumer) Run(ctx context.Context) error {
	// refused ends Run when the broker refuses a setting, which no retry
	// can fix
	ctx, refuse := context.WithCancel(ctx)
	defer refuse()
	var refused error
	dialer, err := c.cfg.Conn.Dialer()
	if err != nil {
		return err
	}
	start := kafka.FirstOffset
	if c.cfg.StartOffset == StartLatest {
		start = kafka.LastOffset
	}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    c.cfg.Group,
		Brokers:               c.cfg.Conn.Brokers,
		Dialer:                dialer,
		Topics:                c.cfg.Topics,
		StartOffset:           start,
		SessionTimeout:        c.cfg.SessionTimeout,
		RebalanceTimeout:      c.cfg.RebalanceTimeout,
		HeartbeatInterval:     c.cfg.HeartbeatInterval,
		JoinGroupBackoff:      time.Second,
		WatchPartitionChanges: true,
		ErrorLogger:           kafkaLogger{c.log},
	})
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	closed := make(chan struct{})
	go func() {
		<-ctx.Done()
		// Closing the group ends the generation; kafka-go waits for every
		// function started on it, so the batch in hand is committed on the
		// generation's connection before the member leaves.
		_ = cg.Close()
		close(closed)
	}()
	defer func() { <-closed }()
	defer c.dlq.Close()

	for {
		c.touch()
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			if errors.Is(err, kafka.InvalidSessionTimeout) {
				refused = fmt.Errorf("session timeout %s: %w", c.cfg.SessionTimeout, err)
				refuse()
				break
			}
			c.log.Warn().Err(err).Msg("joining the consumer group failed; retrying")
			continue
		}
		c.runGeneration(ctx, gen)
	}
	<-closed
	if refused != nil {
		return refused
	}
	if p := c.unfinished.Load(); p != nil && *p != nil {
		return fmt.Errorf("shutdown: %w; the records in hand will be delivered again", *p)
	}
	return nil
}

type topicPartition struct {
	topic     string
	partition int
}

func (c *Consumer) runGeneration(ctx context.Context, gen *kafka.Generation) {
	c.m.rebalances.Inc()
	c.m.stoppedParts.Set(0)
	n := 0
	assigned := map[topicPartition]bool{}
	for topic, parts := range gen.Assignments {
		n += len(parts)
		for _, pa := range parts {
			assigned[topicPartition{topic, pa.ID}] = true
		}
	}
	c.lag.keep(assigned)
	c.m.assigned.Set(float64(n))
	c.log.Info().Int32("generation", gen.ID).Int("partitions", n).Msg("joined the consumer group")

	// A topic recreated since the last generation has a new ID.
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if infos, err := c.cfg.Conn.DescribeTopics(mctx, c.cfg.Topics); err == nil {
		c.ids.set(infos)
	} else {
		c.log.Warn().Err(err).Msg("could not refresh topic ids; keeping the known ones")
	}
	cancel()

	c.joined.Store(true)
	defer c.joined.Store(false)

	in := make(chan kafka.Message, min(c.cfg.BatchSize, readAhead))
	for topic, parts := range gen.Assignments {
		for _, pa := range parts {
			gen.Start(func(gctx context.Context) { c.fetch(gctx, topic, pa, in) })
		}
	}
	done := make(chan struct{})
	gen.Start(func(gctx context.Context) {
		defer close(done)
		c.process(gctx, gen, in)
	})
	<-done
	if ctx.Err() == nil {
		// A rebalance, not a shutdown, ended the generation: what its
		// drain left undone belongs to the partitions' next owner, and is
		// no error of this member's if it is stopped before it joins again.
		c.unfinished.Store(nil)
	}
}

// readAhead is how many records each partition's reader queues at most,
// and the fetched records waiting for the collector: what the batches are
// cut from is the lanes, so a large batch bound need not read ahead as
// much (memory grows with it, and with the partitions).
const readAhead = 1000

// fetch reads one partition from its assigned offset into in, until the
// generation ends.
func (c *Consumer) fetch(gctx context.Context, topic string, pa kafka.PartitionAssignment, in chan<- kafka.Message) {
	dialer, _ := c.cfg.Conn.Dialer()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        c.cfg.Conn.Brokers,
		Topic:          topic,
		Partition:      pa.ID,
		Dialer:         dialer,
		MinBytes:       1,
		MaxBytes:       4 << 20,
		MaxWait:        250 * time.Millisecond,
		QueueCapacity:  min(c.cfg.BatchSize, readAhead),
		IsolationLevel: kafka.ReadCommitted,
		ErrorLogger:    kafkaLogger{c.log},
	})
	defer r.Close()
	if err := r.SetOffset(pa.Offset); err != nil {
		c.log.Error().Err(err).Str("topic", topic).Int("partition", pa.ID).Msg("set offset")
		return
	}
	retry := newRetrier(c.retry, c.log.With().Str("topic", topic).Int("partition", pa.ID).Logger(), "fetch", c.touch)
	for {
		m, err := r.FetchMessage(gctx)
		if err != nil {
			if gctx.Err() != nil || !retry.wait(gctx, err) {
				return
			}
			continue
		}
		retry.reset()
		select {
		case in <- m:
		case <-gctx.Done():
			return
		}
	}
}

// kafkaLogger routes kafka-go's error log to zerolog at debug level: kafka-go
// logs every transient error, which the consumer reports itself.
type kafkaLogger struct{ log zerolog.Logger }

func (l kafkaLogger) Printf(format string, args ...any) {
	l.log.Debug().Str("component", "kafka-go").Msg(fmt.Sprintf(format, args...))
}

// topicIDs maps each input topic to the id of its incarnation. Offsets
// restart at 0 when a topic is recreated or the cluster changes; the topic
// ID changes with them, so offset watermarks keyed by it never mistake new
// records for old.
type topicIDs struct {
	log zerolog.Logger
	mu  sync.Mutex
	ids map[string]string
}

// set records the topics' ids.
func (t *topicIDs) set(infos map[string]kafkaconn.TopicInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, info := range infos {
		id := info.ID
		if id == "" {
			id = "name:" + name
		}
		if old, ok := t.ids[name]; ok && old != id {
			t.log.Warn().Str("topic", name).Msg("topic was recreated: its offsets start a new log")
		}
		t.ids[name] = id
	}
}

// source names the log a partition's records come from.
func (t *topicIDs) source(topic string, partition int) string {
	t.mu.Lock()
	id := t.ids[topic]
	t.mu.Unlock()
	return id + ":" + strconv.Itoa(partition)
}
