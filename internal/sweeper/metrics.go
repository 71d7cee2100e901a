package sweeper

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reconciled, skipped, failed *prometheus.CounterVec
	sweeps                      *prometheus.CounterVec
	lastOK                      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_reconciled_total", Help: "Callbacks livehook never received, found in Aliyun's records and added, by source.",
		}, []string{"source"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_reconcile_skipped_total", Help: "Callbacks found in Aliyun's records that livehook had received, by source.",
		}, []string{"source"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_reconcile_failures_total", Help: "Listings, records and callbacks a sweep could not read or add, by source.",
		}, []string{"source"}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_reconcile_sweeps_total", Help: "Sweeps of Aliyun's callback records, by outcome (ok, failed).",
		}, []string{"outcome"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livehook_reconcile_last_success_timestamp_seconds", Help: "When the last sweep without failures ended, in Unix seconds.",
		}),
	}
	reg.MustRegister(m.reconciled, m.skipped, m.failed, m.sweeps, m.lastOK)
	return m
}
