package sink

import "github.com/prometheus/client_golang/prometheus"

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

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "profiled_profiles_created_total", Help: "Profiles created.",
		}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "profiled_duplicates_ignored_total", Help: "Launches and visits not counted again: same messageId within the dedupe window, or a record Kafka delivered again.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "profiled_redis_write_duration_seconds", Help: "Time to write one batch to Redis (one pipeline), including retries of NOSCRIPT.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "profiled_redis_errors_total", Help: "Redis batch writes that failed and were retried.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "profiled_redis_script_reloads_total", Help: "Script loads after a server answered NOSCRIPT (a restart or failover emptied its script cache).",
		}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "profiled_dedupe_ids_forgotten_total", Help: "messageIds forgotten before their window ended because a profile reached PROFILED_MAX_DEDUPE_IDS (oldest first).",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "profiled_traits_evicted_total", Help: "Custom traits removed from a profile because it holds more than 256 (the largest keys in byte order go).",
		}),
		routed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "profiled_events_routed_total", Help: "Events of a linked anonymous id applied to its user's profile.",
		}),
		links: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "profiled_identity_links_total", Help: "Links of an anonymous id to a user, by result: linked (made now), already (made before), conflict (the id belongs to another user), limit (the user has PROFILED_MAX_LINKED_IDS).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.created, m.duplicates, m.latency, m.errors, m.reloads, m.forgotten, m.evicted, m.routed, m.links)
	}
	for _, r := range []string{LinkLinked, LinkAlready, LinkConflict, LinkLimit} {
		m.links.WithLabelValues(r)
	}
	m.duplicates.WithLabelValues("message_id")
	m.duplicates.WithLabelValues("redelivered")
	return m
}
