package engine

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// BenchmarkBacklog builds a store holding a backlog of pending deliveries
// (1,000,000, or LIVEHOOK_BENCH_BACKLOG), then measures, in a fresh
// process, how long a daemon takes from opening it to accepting a
// callback, its resident memory then, and once the runner has paged its
// first window of due jobs in and started delivering.
//
//	go test -run '^$' -bench Backlog -benchtime 1x -timeout 30m ./engine/
func BenchmarkBacklog(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("LIVEHOOK_BENCH_BACKLOG")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	buildBacklog(b, filepath.Join(dir, "data"), n)
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte("actions:\n  a: { type: record }\nrules:\n  - name: r\n    when: app == \"none\"\n    do: [ { action: a } ]\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var readyMs, rssMiB, anonMiB, readyRSS float64
	for range b.N {
		cmd := exec.Command(self, "-test.run", "^TestBacklogProbe$")
		cmd.Env = append(os.Environ(), "LIVEHOOK_BACKLOG_PROBE="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("probe: %v\n%s", err, out)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if _, err := fmt.Sscanf(sc.Text(), "probe ready_ms=%g rss_mib=%g anon_mib=%g ready_rss_mib=%g", &readyMs, &rssMiB, &anonMiB, &readyRSS); err == nil {
				break
			}
		}
	}
	b.ReportMetric(float64(n), "pending")
	b.ReportMetric(readyMs, "ready_ms")
	b.ReportMetric(readyRSS, "ready_rss_MiB")
	b.ReportMetric(rssMiB, "rss_MiB")
	b.ReportMetric(anonMiB, "rss_anon_MiB")
}

// buildBacklog commits n pending jobs of action a, due now, to a store.
func buildBacklog(b *testing.B, dir string, n int) {
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const perEvent = 1000
	now := time.Now()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < n; i += perEvent {
		ev := &event.Event{ID: fmt.Sprintf("01J%023d", i), Source: event.SourceRecord, Kind: event.KindStatus,
			Domain: "d", App: "live", Stream: "room", Event: "record_error", ReceivedAt: now}
		if _, err := st.Accept(context.Background(), &store.Incoming{Event: ev}); err != nil {
			b.Fatal(err)
		}
		taken, err := st.Unevaluated(done, 1)
		if err != nil || len(taken) != 1 {
			b.Fatalf("take: %v", err)
		}
		eval := &store.Evaluation{EventID: ev.ID, Matched: []string{"r"}}
		for k := range min(perEvent, n-i) {
			eval.Jobs = append(eval.Jobs, &store.Job{ID: store.JobID(ev.ID, "r", k, 0), EventID: ev.ID, Rule: "r", Step: k,
				Action: "a", Type: "record", State: store.Pending, Created: now, NextAt: now, Attempts: []store.Attempt{}})
		}
		if err := st.Commit(context.Background(), []*store.Evaluation{eval}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBacklogProbe is BenchmarkBacklog's fresh process: it opens the
// store, starts an engine, accepts one callback, and prints the time that
// took and the resident memory.
func TestBacklogProbe(t *testing.T) {
	dir := os.Getenv("LIVEHOOK_BACKLOG_PROBE")
	if dir == "" {
		t.Skip("run by BenchmarkBacklog in a process of its own")
	}
	start := time.Now()
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Deliveries wait: the backlog stays a backlog. entered tells when the
	// runner has paged its first window in and started on it.
	blocked := &recorder{entered: make(chan struct{}, 1024)}
	e, err := New(Options{RulesPath: filepath.Join(dir, "rules.yaml"), Store: st, Logger: slog.New(slog.DiscardHandler),
		Metrics: prometheus.NewRegistry(), Registry: func() (*actionapi.Registry, error) { return blocked.registry(t), nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Accept(context.Background(), &event.Event{Source: event.SourceRecord, Kind: event.KindStatus,
		Domain: "d", App: "live", Stream: "room", Event: "record_started"}, ""); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	readyRSS := procStatus(t, "VmRSS:")
	<-blocked.entered
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Printf("probe ready_ms=%.1f rss_mib=%.1f anon_mib=%.1f ready_rss_mib=%.1f heap_mib=%.1f\n", float64(ready.Microseconds())/1000,
		procStatus(t, "VmRSS:"), procStatus(t, "RssAnon:"), readyRSS, float64(m.HeapAlloc)/(1<<20))
}

// procStatus reads a memory figure of the process, in MiB: VmRSS: is all it
// holds resident, RssAnon: the part that is not pages of files it maps
// (bbolt maps its database; those pages are cache the kernel can drop).
func procStatus(t *testing.T, field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status here")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb / 1024
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
