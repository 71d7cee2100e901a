package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/postgres"
	"github.com/livehook/livehook/engine/store/postgres/pgtest"
)

// BenchmarkAccept64 is Accept from 64 concurrent callers, each with a
// dedupe identity as recording callbacks have, on PostgreSQL against the
// embedded store in the same run: PostgreSQL's group commit shares each
// WAL flush among the commits in flight (accepts/flush).
func BenchmarkAccept64(b *testing.B) { benchmarkAccept(b, 64, 4000) }

// BenchmarkAccept1 is one caller: the latency of one durable accept.
func BenchmarkAccept1(b *testing.B) { benchmarkAccept(b, 1, 500) }

func benchmarkAccept(b *testing.B, callers, perRound int) {
	dsn := pgtest.DSN(b)
	pg := open(b, dsn, postgres.Options{})
	local, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { local.Close() })
	var seq atomic.Int64
	stores := []store.Store{local, pg}
	runs := make([]acceptRun, len(stores))
	for _, s := range stores { // warm up
		acceptRound(b, s, callers, perRound/4, &seq)
	}
	var flushes int64
	b.ResetTimer()
	for range b.N {
		for i, s := range stores {
			before := walSyncs(b)
			r := acceptRound(b, s, callers, perRound, &seq)
			if s == store.Store(pg) {
				flushes += walSyncs(b) - before
			}
			runs[i].add(r)
		}
	}
	b.StopTimer()
	l, p := runs[0], runs[1]
	b.ReportMetric(p.perSecond(), "pg_accepts/s")
	b.ReportMetric(l.perSecond(), "local_accepts/s")
	b.ReportMetric(p.perSecond()/l.perSecond(), "pg/local")
	b.ReportMetric(float64(p.quantile(0.50).Microseconds()), "pg_p50_µs")
	b.ReportMetric(float64(p.quantile(0.99).Microseconds()), "pg_p99_µs")
	b.ReportMetric(float64(l.quantile(0.50).Microseconds()), "local_p50_µs")
	b.ReportMetric(float64(l.quantile(0.99).Microseconds()), "local_p99_µs")
	b.ReportMetric(float64(len(p.latencies))/float64(max(flushes, 1)), "accepts/flush")
}

// acceptRun is the latencies of a benchmark's accepts and the time they
// took together.
type acceptRun struct {
	elapsed   time.Duration
	latencies []time.Duration
}

func (r *acceptRun) add(o acceptRun) {
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
	slices.Sort(r.latencies)
}

func (r acceptRun) perSecond() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

func (r acceptRun) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(q*float64(len(r.latencies)-1))]
}

// acceptRound accepts n new events from callers goroutines.
func acceptRound(b *testing.B, s store.Store, callers, n int, seq *atomic.Int64) acceptRun {
	var mu sync.Mutex
	var out acceptRun
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			var mine []time.Duration
			for next.Add(1) <= int64(n) {
				i := seq.Add(1)
				ev := newEvent(time.Now(), fmt.Sprint("room", i))
				ev.URI = fmt.Sprintf("live/room/%d.flv", i)
				t0 := time.Now()
				_, err := s.Accept(context.Background(), &store.Incoming{Event: ev, DedupeKey: "file\x00" + ev.URI, DedupeTTL: time.Hour})
				if err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			out.latencies = append(out.latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	return out
}

// walSyncs is how many times the server has flushed its WAL.
func walSyncs(b *testing.B) int64 {
	var n int64
	for _, v := range query(b, pgtest.Server(b), "SELECT wal_sync FROM pg_stat_wal") {
		n = v.(int64)
	}
	return n
}
