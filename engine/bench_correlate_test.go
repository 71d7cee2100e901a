package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"

	"github.com/livehook/livehook/internal/testwait"
)

// BenchmarkCorrelate measures the evaluation of 100 rules over time
// (counts, none reaching its threshold, so every event changes the state
// of every rule's key) over 10,000 live keys, against the same 100 rules
// without their temporal blocks, in one run: the cost per event of each,
// their ratio, and the bytes of state per key. The single-event rules'
// conditions cost the same but do not hold, so neither side plans jobs.
//
//	go test -run '^$' -bench Correlate -benchtime 1x ./engine/
func BenchmarkCorrelate(b *testing.B) {
	const rulesN, streams = 100, 10_000
	var plain, temporal strings.Builder
	plain.WriteString("rules:\n")
	temporal.WriteString("rules:\n")
	for i := range rulesN {
		fmt.Fprintf(&plain, "  - name: r%d\n    when: 'event == \"record_error\" && app == \"app%d\"'\n    do: [ { type: log } ]\n", i, i)
		fmt.Fprintf(&temporal, "  - name: r%d\n    when: 'event == \"record_error\" && app != \"app%d\"'\n    count: { at_least: 1000, within: 1h }\n    do: [ { type: log } ]\n", i, i)
	}
	var perEvent [2]float64
	var bytesPerKey float64
	for range b.N {
		for k, rulesYAML := range []string{plain.String(), temporal.String()} {
			d, st := drainOnce(b, rulesYAML, streams, 2)
			perEvent[k] = float64(d.Microseconds()) / float64(2*streams)
			if k == 1 {
				entries, err := st.ListState(context.Background(), "t\x00", "", 1<<30)
				if err != nil {
					b.Fatal(err)
				}
				total := 0
				for _, e := range entries {
					total += len(e.Key) + len(e.Value)
				}
				bytesPerKey = float64(total) / float64(len(entries))
			}
			st.Close()
		}
	}
	b.ReportMetric(perEvent[0], "single_event_µs/event")
	b.ReportMetric(perEvent[1], "over_time_µs/event")
	b.ReportMetric(perEvent[1]/perEvent[0], "cost_ratio")
	b.ReportMetric(bytesPerKey, "state_bytes/key")
}

// BenchmarkStateHeap measures the Go heap the engine holds with 100,000
// keys of rules over time in the store (10 rules over 10,000 streams).
//
//	go test -run '^$' -bench StateHeap -benchtime 1x ./engine/
func BenchmarkStateHeap(b *testing.B) {
	const rulesN, streams = 10, 10_000
	var y strings.Builder
	y.WriteString("rules:\n")
	for i := range rulesN {
		fmt.Fprintf(&y, "  - name: r%d\n    when: event == \"record_started\"\n    expect: { match: kind == \"file\", within: 6h }\n    do: [ { type: log } ]\n", i)
	}
	var heapMiB float64
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		_, st := drainOnce(b, y.String(), streams, 1)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heapMiB = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		stats, err := st.Stats(context.Background())
		if err != nil || stats.Timers != rulesN*streams {
			b.Fatalf("stats %+v, %v: want %d timers", stats, err, rulesN*streams)
		}
		st.Close()
	}
	b.ReportMetric(heapMiB, "heap_MiB/100k_keys")
}

// drainOnce accepts perStream record_error (or record_started) events for
// each of streams streams, then starts an engine on the rules and returns
// how long it took to evaluate them all.
func drainOnce(b *testing.B, rulesYAML string, streams, perStream int) (time.Duration, *store.Local) {
	b.Helper()
	dir := b.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(rulesYAML), 0o644); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	name := "record_error"
	if strings.Contains(rulesYAML, "record_started") {
		name = "record_started"
	}
	var wg sync.WaitGroup
	const senders = 64
	for s := range senders {
		wg.Go(func() {
			for i := s; i < streams*perStream; i += senders {
				ev := &event.Event{ID: fmt.Sprintf("ev%08d", i), Source: event.SourceRecord, Kind: event.KindStatus,
					Domain: "play.example.com", App: "live", Stream: fmt.Sprint("room", i%streams), Event: name, ReceivedAt: time.Now()}
				if _, err := st.Accept(context.Background(), &store.Incoming{Event: ev}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	e, err := New(Options{RulesPath: rulesPath, Store: st, Logger: slog.New(slog.DiscardHandler), Metrics: prometheus.NewRegistry(),
		Registry: func() (*actionapi.Registry, error) { return logOnlyRegistry(b), nil }})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	testwait.Until(b, 10*time.Minute, "every event evaluated", func() bool {
		s, err := st.Stats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return s.Unevaluated == 0
	})
	took := time.Since(start)
	if err := e.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	return took, st
}
