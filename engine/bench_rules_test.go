package engine

import (
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/rules/rulestest"
	"github.com/livehook/livehook/engine/store"
)

// BenchmarkAcceptRules1000 is the durable accept path at 64 connections
// with 1,000 rules shaped like a real deployment's (rulestest.Mixed; none
// matches the load) against the same path with one rule. Each iteration
// drives them in the order one, many, many, one, so that a drift of the
// shared machine's speed weighs on both alike. Target: rules_ratio ≥ 0.85;
// cpu_ratio, the same from the CPU each callback took, varies less.
func BenchmarkAcceptRules1000(b *testing.B) {
	const conns, perRound = 64, 10000
	one, e1 := rulesServer(b, "rules:\n  - name: never\n    when: app == \"none\"\n    do: [ { type: log } ]\n")
	many, e2 := rulesServer(b, rulestest.Mixed(1000))
	servers := []*httptest.Server{one, many}
	engines := []*Engine{e1, e2}
	accepted := make([][]loadResult, len(servers))
	evaluated := make([]time.Duration, len(servers)) // from the first request until all are evaluated
	var seq atomic.Int64
	for i, srv := range servers { // warm up
		drive(b, srv.URL+"/callbacks/record", conns, perRound/4, &seq)
		waitEvaluated(b, engines[i])
	}
	b.ResetTimer()
	for range b.N {
		for _, i := range []int{0, 1, 1, 0} {
			srv := servers[i]
			start := time.Now()
			accepted[i] = append(accepted[i], drive(b, srv.URL+"/callbacks/record", conns, perRound, &seq))
			b.StopTimer()
			waitEvaluated(b, engines[i]) // its evaluation must not run into the other's round
			evaluated[i] += time.Since(start)
			b.StartTimer()
		}
	}
	b.StopTimer()
	oneAll, manyAll := merge(accepted[0]), merge(accepted[1])
	b.ReportMetric(oneAll.perSecond(), "one_rule_events/s")
	b.ReportMetric(manyAll.perSecond(), "1000_rules_events/s")
	b.ReportMetric(manyAll.perSecond()/oneAll.perSecond(), "rules_ratio")
	b.ReportMetric(evaluated[0].Seconds()/evaluated[1].Seconds(), "evaluated_ratio")
	b.ReportMetric(manyAll.cpuPerEvent()-oneAll.cpuPerEvent(), "extra_cpu_µs/event")
	// The machine is shared: other processes move the wall-clock ratio,
	// hardly the CPU each callback takes, client and server together.
	b.ReportMetric(oneAll.cpuPerEvent()/manyAll.cpuPerEvent(), "cpu_ratio")
}

// rulesServer is durableServer's accept path with the given rules file.
func rulesServer(b *testing.B, rulesYAML string) (*httptest.Server, *Engine) {
	return acceptServer(b, rulesYAML, store.Options{})
}
