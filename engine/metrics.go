package engine

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's own series; intake and admin register theirs.
type metrics struct {
	ruleMatches  *prometheus.CounterVec
	ruleErrors   *prometheus.CounterVec
	throttled    *prometheus.CounterVec
	deliveries   *prometheus.CounterVec
	deliveryTime *prometheus.HistogramVec
	reloads      *prometheus.CounterVec
	lastReload   prometheus.Gauge
	lastReloadOK prometheus.Gauge
	queueDepth   prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, queueDepth func() float64) *metrics {
	m := &metrics{
		ruleMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_rule_matches_total", Help: "Events that matched a rule.",
		}, []string{"rule"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_rule_evaluation_errors_total", Help: "Conditions that failed at run time (counted as no match).",
		}, []string{"rule"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_rule_throttled_total", Help: "Matches whose actions a rule's throttle held back.",
		}, []string{"rule"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_deliveries_total", Help: "Action deliveries by final result: delivered, retryable, permanent, error.",
		}, []string{"action", "type", "result"}),
		deliveryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "livehook_delivery_duration_seconds", Help: "Time to deliver one action, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
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
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livehook_queue_depth", Help: "Accepted events waiting for rule evaluation.",
		}, queueDepth),
	}
	reg.MustRegister(m.ruleMatches, m.ruleErrors, m.throttled, m.deliveries, m.deliveryTime,
		m.reloads, m.lastReload, m.lastReloadOK, m.queueDepth)
	return m
}
