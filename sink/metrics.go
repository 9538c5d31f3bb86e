package sink

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the store-side series: what Redis did with the updates.
type metrics struct {
	created    prometheus.Counter
	duplicates *prometheus.CounterVec
	latency    prometheus.Histogram
	errors     prometheus.Counter
	reloads    prometheus.Counter
	forgotten  prometheus.Counter
	evicted    prometheus.Counter
	routed     prometheus.Counter
	links      *prometheus.CounterVec
}

// newMetrics registers the store-side series on reg; nil registers none
// (promauto.With(nil)), for a Sink nobody scrapes.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		created:    f.NewCounter(prometheus.CounterOpts{Name: "profiled_profiles_created_total", Help: "Profiles created."}),
		duplicates: f.NewCounterVec(prometheus.CounterOpts{Name: "profiled_duplicates_ignored_total", Help: "Launches and visits not counted again: same messageId within the dedupe window, or a record Kafka delivered again."}, []string{"reason"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{Name: "profiled_redis_write_duration_seconds", Help: "Time to write one batch to Redis (one pipeline), including retries of NOSCRIPT.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		errors:    f.NewCounter(prometheus.CounterOpts{Name: "profiled_redis_errors_total", Help: "Redis batch writes that failed and were retried."}),
		reloads:   f.NewCounter(prometheus.CounterOpts{Name: "profiled_redis_script_reloads_total", Help: "Script loads after a server answered NOSCRIPT (a restart or failover emptied its script cache)."}),
		forgotten: f.NewCounter(prometheus.CounterOpts{Name: "profiled_dedupe_ids_forgotten_total", Help: "messageIds forgotten before their window ended because a profile reached PROFILED_MAX_DEDUPE_IDS (oldest first)."}),
		evicted:   f.NewCounter(prometheus.CounterOpts{Name: "profiled_traits_evicted_total", Help: "Custom traits removed from a profile because it holds more than 256 (the largest keys in byte order go)."}),
		routed:    f.NewCounter(prometheus.CounterOpts{Name: "profiled_events_routed_total", Help: "Events of a linked anonymous id applied to its user's profile."}),
		links:     f.NewCounterVec(prometheus.CounterOpts{Name: "profiled_identity_links_total", Help: "Links of an anonymous id to a user, by result: linked (made now), already (made before), conflict (the id belongs to another user), limit (the user has PROFILED_MAX_LINKED_IDS)."}, []string{"result"}),
	}
	for _, r := range []string{LinkLinked, LinkAlready, LinkConflict, LinkLimit} {
		m.links.WithLabelValues(r)
	}
	m.duplicates.WithLabelValues("message_id")
	m.duplicates.WithLabelValues("redelivered")
	return m
}
