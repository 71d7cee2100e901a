package engine

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/store"
)

// metrics are the engine's own series; intake and admin register theirs.
type metrics struct {
	ruleMatches  *prometheus.CounterVec
	ruleErrors   *prometheus.CounterVec
	throttled    *prometheus.CounterVec
	duplicates   *prometheus.CounterVec
	deliveries   *prometheus.CounterVec
	deliveryTime *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	lastReload   prometheus.Gauge
	lastReloadOK prometheus.Gauge
	rulesInfo    *prometheus.GaugeVec
	storeErrors  prometheus.Counter
	ruleFirings  *prometheus.CounterVec
	stateExpired *prometheus.CounterVec
	stateDropped *prometheus.CounterVec
	stateRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, st store.Store) *metrics {
	m := &metrics{
		ruleMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_rule_matches_total", Help: "Events that matched a rule; mode=\"shadow\" counts the matches and firings of rules in shadow mode, which deliver nothing.",
		}, []string{"rule", "mode"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_rule_evaluation_errors_total", Help: "Conditions that failed at run time (counted as no match).",
		}, []string{"rule"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_rule_throttled_total", Help: "Matches whose actions a rule's throttle held back.",
		}, []string{"rule"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_events_duplicate_total", Help: "Retried callbacks recognised as already accepted.",
		}, []string{"source"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_deliveries_total", Help: "Delivery attempts by result: delivered, retryable, permanent.",
		}, []string{"action", "type", "result"}),
		deliveryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "livehook_delivery_duration_seconds", Help: "Time one delivery attempt took, quick HTTP retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"action", "type"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_delivery_retries_total", Help: "Failed attempts scheduled to be tried again.",
		}, []string{"action", "type"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_reloads_total", Help: "Rule reloads by result: success, error.",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livehook_last_reload_success_timestamp_seconds", Help: "When the rules last loaded successfully.",
		}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livehook_last_reload_successful", Help: "1 if the last reload succeeded, else 0.",
		}),
		rulesInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "livehook_rules_info", Help: "1, labelled with the hash of the rules in force (as /api/rules reports it): replicas that differ are a rollout not finished.",
		}, []string{"hash"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livehook_store_errors_total", Help: "Writes to the store that failed (intake answers 503 for those on the request path).",
		}),
	}
	m.ruleFirings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livehook_rule_firings_total", Help: "Times a rule over time fired (an expectation not met, a count reached, a session or digest closed).",
	}, []string{"rule"})
	m.stateExpired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livehook_state_expired_total", Help: "Rule state discarded: outage (a timer overdue past --state-outage-tolerance).",
	}, []string{"reason"})
	m.stateDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livehook_state_dropped_total", Help: "Keys of rule state dropped by a reload that changed or removed their rule.",
	}, []string{"rule"})
	m.stateRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livehook_state_refused_total", Help: "New keys a rule over time refused: at its max_keys (or --state-max-keys) with every key holding a timer.",
	}, []string{"rule"})
	reg.MustRegister(m.ruleFirings, m.stateExpired, m.stateDropped, m.stateRefused)
	reg.MustRegister(m.ruleMatches, m.ruleErrors, m.throttled, m.duplicates, m.deliveries, m.deliveryTime,
		m.retries, m.reloads, m.lastReload, m.lastReloadOK, m.rulesInfo, m.storeErrors,
		&storeCollector{store: st},
	)
	return m
}

// storeCollector reports what the store holds, read once per scrape.
type storeCollector struct{ store store.Store }

var (
	unevaluatedDesc = prometheus.NewDesc("livehook_events_unevaluated", "Accepted events waiting for rule evaluation.", nil, nil)
	pendingDesc     = prometheus.NewDesc("livehook_jobs_pending", "Deliveries waiting to run or to be retried.", nil, nil)
	deadDesc        = prometheus.NewDesc("livehook_dead_letters", "Deliveries that failed for good and wait for a replay.", nil, nil)
	bytesDesc       = prometheus.NewDesc("livehook_store_bytes", "Bytes the store takes on disk.", nil, nil)
	timersDesc      = prometheus.NewDesc("livehook_timers_pending", "Timers of rules over time waiting to fire.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- unevaluatedDesc
	ch <- pendingDesc
	ch <- deadDesc
	ch <- bytesDesc
	ch <- timersDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.store.Stats(context.Background())
	if err != nil {
		for _, d := range []*prometheus.Desc{unevaluatedDesc, pendingDesc, deadDesc, bytesDesc, timersDesc} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	ch <- prometheus.MustNewConstMetric(unevaluatedDesc, prometheus.GaugeValue, float64(st.Unevaluated))
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(st.Dead))
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(timersDesc, prometheus.GaugeValue, float64(st.Timers))
}

// CommitObserver returns a journal OnCommit hook that records each group
// commit's size and write+flush latency.
func CommitObserver(reg prometheus.Registerer) func(records int, d time.Duration) {
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "livehook_journal_commit_seconds", Help: "Write plus flush (fdatasync) time of one group commit of accepted events.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14),
	})
	size := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "livehook_journal_commit_records", Help: "Accepted events made durable by one group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	})
	reg.MustRegister(latency, size)
	return func(records int, d time.Duration) {
		latency.Observe(d.Seconds())
		size.Observe(float64(records))
	}
}

// stateKeysCollector reports the keys each rule over time keeps state for.
type stateKeysCollector struct{ keys *stateKeys }

var stateKeysDesc = prometheus.NewDesc("livehook_state_keys", "Keys a rule over time keeps state for.", []string{"rule"}, nil)

func (c stateKeysCollector) Describe(ch chan<- *prometheus.Desc) { ch <- stateKeysDesc }

func (c stateKeysCollector) Collect(ch chan<- prometheus.Metric) {
	for rule, n := range c.keys.perRule() {
		ch <- prometheus.MustNewConstMetric(stateKeysDesc, prometheus.GaugeValue, float64(n), rule)
	}
}
