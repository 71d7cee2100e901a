package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store/postgres/pgtest"
	"github.com/livehook/livehook/internal/loadgen"
	"github.com/livehook/livehook/internal/testwait"
)

// BenchmarkReplicas measures the deployment of deploy/kubernetes on one
// machine: two real `livehook serve` processes on one PostgreSQL database,
// the load spread over both as a load balancer would, against one process
// on the embedded store, in the same run. 64 connections post recording
// callbacks, each forwarded by a webhook action (default delivery
// settings) to a local receiver. Figures: callbacks accepted per second,
// p99 accept latency, deliveries per second end to end (first callback
// sent to last delivery received), and PostgreSQL's figure over the
// embedded store's for each (pg/embedded).
//
//	. .ci/postgres.sh && pg_start /tmp/pg && go test -run '^$' -bench Replicas -benchtime 1x -count 3 ./cmd/livehook/; pg_stop /tmp/pg
func BenchmarkReplicas(b *testing.B) {
	pgtest.Server(b) // skips, saying why, without a database
	bin, err := buildBinary()
	if err != nil {
		b.Fatal(err)
	}
	const conns, n = 64, 3_000
	var received atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { received.Add(1) }))
	defer rc.Close()
	rulesPath := filepath.Join(b.TempDir(), "rules.yaml")
	writeFile(b, rulesPath, "actions:\n  out: { type: webhook, url: "+rc.URL+"/hook }\nrules:\n  - name: every-file\n    when: kind == \"file\"\n    do: [ { action: out } ]\n")
	serve := func(args ...string) binaryDaemon {
		return startBinary(b, bin, append([]string{"--rules", rulesPath, "--log-level", "warn"}, args...)...)
	}
	type figures struct{ accepted, delivered, p99ms float64 }
	run := func(name string, replicas ...binaryDaemon) figures {
		var urls []string
		for _, d := range replicas {
			urls = append(urls, "http://"+d.listen+"/callbacks/record")
		}
		received.Store(0)
		start := time.Now()
		r := loadgen.Drive(context.Background(), loadgen.Options{URLs: urls, Conns: conns, N: n,
			Body: loadgen.FileCallback(fmt.Sprint(name, start.UnixNano()))})
		if r.Failures > 0 {
			b.Fatalf("%s: %d callbacks failed, first: %s", name, r.Failures, r.FirstErr)
		}
		if !testwait.Within(3*time.Minute, func() bool { return received.Load() >= n }) {
			b.Fatalf("%s: %d of %d callbacks delivered in 3m", name, received.Load(), n)
		}
		delivered := float64(n) / time.Since(start).Seconds()
		for _, d := range replicas {
			// Stopped before the next measurement, so it takes no CPU from it.
			if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				b.Fatal(err)
			}
			if err := d.cmd.Wait(); err != nil {
				b.Fatalf("%s: the daemon exited with %v:\n%s", name, err, d.logs.String())
			}
		}
		return figures{accepted: r.PerSecond(), delivered: delivered, p99ms: float64(r.Quantile(0.99).Microseconds()) / 1000}
	}
	var emb, pg figures
	for range b.N {
		e := run("embedded", serve("--data", b.TempDir()))
		dsn := pgtest.DSN(b)
		p := run("postgres", serve("--store", dsn), serve("--store", dsn))
		emb.accepted, emb.delivered, emb.p99ms = emb.accepted+e.accepted, emb.delivered+e.delivered, emb.p99ms+e.p99ms
		pg.accepted, pg.delivered, pg.p99ms = pg.accepted+p.accepted, pg.delivered+p.delivered, pg.p99ms+p.p99ms
	}
	per := float64(b.N)
	b.ReportMetric(pg.accepted/per, "pg_accepted/s")
	b.ReportMetric(emb.accepted/per, "embedded_accepted/s")
	b.ReportMetric(pg.accepted/emb.accepted, "accepted_ratio")
	b.ReportMetric(pg.delivered/per, "pg_delivered/s")
	b.ReportMetric(emb.delivered/per, "embedded_delivered/s")
	b.ReportMetric(pg.delivered/emb.delivered, "delivered_ratio")
	b.ReportMetric(pg.p99ms/per, "pg_p99_ms")
	b.ReportMetric(emb.p99ms/per, "embedded_p99_ms")
	b.ReportMetric(pg.p99ms/emb.p99ms, "p99_ratio")
}
