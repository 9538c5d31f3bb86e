package consumer

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/profiled/profiled/profile"
)

// Metrics are the consumer's Prometheus series. No label carries a user id
// or another unbounded value: topics and partitions are bounded by the
// deployment.
type Metrics struct {
	consumed      *prometheus.CounterVec
	applied       *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	fieldsDropped *prometheus.CounterVec
	batchSize     prometheus.Histogram
	eventLag      prometheus.Histogram
	consumerLag   *prometheus.GaugeVec
	commitErrors  prometheus.Counter
	dlqErrors     *prometheus.CounterVec
	stoppedParts  prometheus.Gauge
	lastProcessed prometheus.Gauge
	assigned      prometheus.Gauge
	rebalances    prometheus.Counter
}

// NewMetrics registers the consumer's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		consumed:      f.NewCounterVec(prometheus.CounterOpts{Name: "profiled_records_consumed_total", Help: "Kafka records fetched and processed, by topic."}, []string{"topic"}),
		applied:       f.NewCounterVec(prometheus.CounterOpts{Name: "profiled_events_applied_total", Help: "Events applied to profiles in Redis, by kind."}, []string{"kind"}),
		skipped:       f.NewCounterVec(prometheus.CounterOpts{Name: "profiled_records_skipped_total", Help: "Records consumed with no effect, by reason."}, []string{"reason"}),
		deadLettered:  f.NewCounterVec(prometheus.CounterOpts{Name: "profiled_records_dead_lettered_total", Help: "Records written to the dead-letter topic, by reason."}, []string{"reason"}),
		fieldsDropped: f.NewCounterVec(prometheus.CounterOpts{Name: "profiled_fields_dropped_total", Help: "Event fields dropped because they failed their rule, by field and reason."}, []string{"field", "reason"}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{Name: "profiled_batch_size_records", Help: "Records per processed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		eventLag: f.NewHistogram(prometheus.HistogramOpts{Name: "profiled_event_time_lag_seconds", Help: "Wall-clock time at apply minus event time.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 21600, 86400}}),
		consumerLag:   f.NewGaugeVec(prometheus.GaugeOpts{Name: "profiled_consumer_lag_records", Help: "Records between the committed offset and the high watermark, per assigned partition."}, []string{"topic", "partition"}),
		commitErrors:  f.NewCounter(prometheus.CounterOpts{Name: "profiled_commit_errors_total", Help: "Offset commits that failed."}),
		dlqErrors:     f.NewCounterVec(prometheus.CounterOpts{Name: "profiled_dlq_errors_total", Help: "Dead-letter writes that failed, by kind (temporary: retried; permanent: the partition stopped)."}, []string{"kind"}),
		stoppedParts:  f.NewGauge(prometheus.GaugeOpts{Name: "profiled_partitions_stopped", Help: "Assigned partitions stopped by a dead-letter write that failed for good."}),
		lastProcessed: f.NewGauge(prometheus.GaugeOpts{Name: "profiled_last_processed_timestamp_seconds", Help: "Unix time the last batch was written and committed."}),
		assigned:      f.NewGauge(prometheus.GaugeOpts{Name: "profiled_assigned_partitions", Help: "Partitions assigned to this instance."}),
		rebalances:    f.NewCounter(prometheus.CounterOpts{Name: "profiled_generations_total", Help: "Consumer group generations joined."}),
	}
	for _, k := range profile.Kinds {
		m.applied.WithLabelValues(k.String())
	}
	for _, r := range profile.SkipReasons {
		m.skipped.WithLabelValues(r)
	}
	for _, r := range profile.RejectReasons {
		m.deadLettered.WithLabelValues(r)
	}
	for _, f := range profile.DropFields {
		for _, r := range profile.DropReasons {
			m.fieldsDropped.WithLabelValues(f, r)
		}
	}
	m.dlqErrors.WithLabelValues("temporary")
	m.dlqErrors.WithLabelValues("permanent")
	return m
}

// lagGauges is the consumer-lag gauge and the partitions it has a series
// for.
type lagGauges struct {
	vec *prometheus.GaugeVec
	mu  sync.Mutex
	set map[topicPartition]bool
}

// update sets the gauge of each partition in lag.
func (l *lagGauges) update(lag map[topicPartition]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for tp, n := range lag {
		l.vec.WithLabelValues(tp.topic, strconv.Itoa(tp.partition)).Set(float64(n))
		l.set[tp] = true
	}
}

// keep drops the series of partitions no longer assigned. The others keep
// their value into the new generation: a stopped partition's lag must not
// vanish at a rebalance, or its alert could not fire (it is updated again
// once the partition's records come through).
func (l *lagGauges) keep(assigned map[topicPartition]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for tp := range l.set {
		if !assigned[tp] {
			l.vec.DeleteLabelValues(tp.topic, strconv.Itoa(tp.partition))
			delete(l.set, tp)
		}
	}
}
