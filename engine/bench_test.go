package engine

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/journal"
	"github.com/livehook/livehook/internal/intake"
	"github.com/livehook/livehook/internal/loadgen"

	"github.com/livehook/livehook/internal/testwait"
)

// bareAcceptor answers like the engine without persisting anything: the
// baseline the durable accept path is measured against.
type bareAcceptor struct{ n atomic.Int64 }

func (a *bareAcceptor) Accept(context.Context, *event.Event, string) (string, error) {
	return fmt.Sprint(a.n.Add(1)), nil
}

// journalAcceptor only appends each event, encoded as the embedded store
// encodes it, to a journal: no dedupe, no evaluation, no state commits.
// Measured beside the others, it shows how much of the durable path's cost
// is the journal's flush itself.
type journalAcceptor struct{ log *journal.Log }

func (a journalAcceptor) Accept(ctx context.Context, ev *event.Event, _ string) (string, error) {
	rec, err := event.AppendJSON([]byte(`{"event":`), ev)
	if err != nil {
		return "", err
	}
	rec = append(rec, '}')
	seq, err := a.log.Append(context.WithoutCancel(ctx), rec)
	if err != nil {
		return "", err
	}
	return fmt.Sprint(seq), nil
}

// loadResult is one measured run.
type loadResult struct {
	elapsed   time.Duration
	cpu       time.Duration // the process's user+system CPU: client and server share it
	latencies []time.Duration
}

func (r loadResult) perSecond() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }
func (r loadResult) cpuPerEvent() float64 {
	return float64(r.cpu.Microseconds()) / float64(len(r.latencies))
}
func (r loadResult) quantile(q float64) time.Duration {
	return r.latencies[min(int(q*float64(len(r.latencies))), len(r.latencies)-1)]
}

// drive posts n recording callbacks (each with its own uri, so none is a
// duplicate) over conns keep-alive connections and times each.
func drive(b *testing.B, url string, conns, n int, seq *atomic.Int64) loadResult {
	cpu0 := processCPU(b)
	r := loadgen.Drive(context.Background(), loadgen.Options{URL: url, Conns: conns, N: n,
		Body: func(int64) []byte { return recordingCallback(seq.Add(1)) }})
	if r.Failures > 0 {
		b.Errorf("%d callbacks failed, first: %s", r.Failures, r.FirstErr)
	}
	return loadResult{elapsed: r.Elapsed, cpu: processCPU(b) - cpu0, latencies: r.Latencies}
}

// recordingCallback is the nth callback the benchmarks send: each names
// its own file, so none is a duplicate.
func recordingCallback(n int64) []byte {
	return fmt.Appendf(nil, `{"domain":"live.example.com","app":"live","stream":"room1","uri":"live/room1/%d.flv","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`, n)
}

// durableServer is the real accept path: intake in front of an engine
// with the embedded store, rules loaded (none matches, so the figures are
// the accept path's own).
func durableServer(b *testing.B, commits *commitStats) (*httptest.Server, *Engine) {
	return acceptServer(b, "rules:\n  - name: never\n    when: app == \"none\"\n    do: [ { type: log } ]\n",
		store.Options{OnCommit: commits.observe})
}

// acceptServer is intake in front of an engine on the embedded store,
// with the given rules.
func acceptServer(b *testing.B, rulesYAML string, so store.Options) (*httptest.Server, *Engine) {
	dir := b.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(rulesYAML), 0o644); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"), so)
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	quiet := slog.New(slog.DiscardHandler)
	e, err := New(Options{RulesPath: rulesPath, Store: st, Logger: quiet, Metrics: reg,
		Registry: func() (*actionapi.Registry, error) { return logOnlyRegistry(b), nil }})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(intake.New(intake.Options{Acceptor: e, Logger: quiet, Metrics: reg}))
	b.Cleanup(func() {
		srv.Close()
		_ = e.Stop(context.Background())
		st.Close()
	})
	return srv, e
}

// waitEvaluated returns once e has evaluated every event it accepted, so
// that its work after the replies is not left running into the next
// handler's round.
func waitEvaluated(b *testing.B, e *Engine) {
	testwait.Until(b, time.Minute, "every accepted event evaluated", func() bool {
		st, err := e.store.Stats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return st.Unevaluated == 0
	})
}

// logOnlyRegistry holds a do-nothing `log` type: the benchmark rules
// never match, so it is never run.
func logOnlyRegistry(b *testing.B) *actionapi.Registry {
	reg := actionapi.NewRegistry()
	rec := &recorder{}
	if err := reg.Add(actionapi.Type{Name: "log", Open: func(actionapi.Settings) (actionapi.Instance, error) { return rec, nil }}); err != nil {
		b.Fatal(err)
	}
	return reg
}

// journalServer is intake in front of journalAcceptor.
func journalServer(b *testing.B, commits *commitStats) *httptest.Server {
	log, err := journal.Open(b.TempDir(), journal.Options{OnCommit: commits.observe})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(intake.New(intake.Options{Acceptor: journalAcceptor{log}, Logger: slog.New(slog.DiscardHandler)}))
	b.Cleanup(func() {
		srv.Close()
		log.Close()
	})
	return srv
}

// driver posts n callbacks to url over conns connections.
type driver func(b *testing.B, url string, conns, n int, seq *atomic.Int64) loadResult

// benchmarkAccept alternates the bare, journal-only and durable handlers
// within every iteration, so all see the same machine, and reports the
// durable path's throughput and latency as ratios of the bare one's.
func benchmarkAccept(b *testing.B, conns, perRound int, load driver) {
	bare := httptest.NewServer(intake.New(intake.Options{Acceptor: &bareAcceptor{}, Logger: slog.New(slog.DiscardHandler)}))
	defer bare.Close()
	var commits, journalCommits commitStats
	durable, e := durableServer(b, &commits)
	servers := []*httptest.Server{bare, journalServer(b, &journalCommits), durable}
	runs := make([][]loadResult, len(servers))
	var seq atomic.Int64
	for _, srv := range servers { // warm up
		load(b, srv.URL+"/callbacks/record", conns, perRound/4, &seq)
	}
	waitEvaluated(b, e)
	journalCommits.reset()
	b.ResetTimer()
	for range b.N {
		for i, srv := range servers {
			runs[i] = append(runs[i], load(b, srv.URL+"/callbacks/record", conns, perRound, &seq))
		}
		b.StopTimer()
		waitEvaluated(b, e)
		b.StartTimer()
	}
	b.StopTimer()
	bareAll, journalAll, durableAll := merge(runs[0]), merge(runs[1]), merge(runs[2])
	b.ReportMetric(journalAll.perSecond()/bareAll.perSecond(), "journal_only_ratio")
	b.ReportMetric(float64(journalAll.quantile(0.50).Microseconds()), "journal_only_p50_µs")
	b.ReportMetric(durableAll.perSecond(), "durable_events/s")
	b.ReportMetric(bareAll.perSecond(), "bare_events/s")
	b.ReportMetric(durableAll.perSecond()/bareAll.perSecond(), "throughput_ratio")
	b.ReportMetric(float64(durableAll.quantile(0.50).Microseconds()), "durable_p50_µs")
	b.ReportMetric(float64(durableAll.quantile(0.99).Microseconds()), "durable_p99_µs")
	b.ReportMetric(float64(bareAll.quantile(0.50).Microseconds()), "bare_p50_µs")
	b.ReportMetric(float64(bareAll.quantile(0.99).Microseconds()), "bare_p99_µs")
	b.ReportMetric(float64(durableAll.quantile(0.50))/float64(bareAll.quantile(0.50)), "p50_ratio")
	// The latency target on one connection: bare plus one and a half
	// journal commits, the commit measured on its own in this run.
	journalCommit := journalCommits.median()
	b.ReportMetric(float64(journalCommit.Microseconds()), "journal_commit_p50_µs")
	b.ReportMetric(float64(durableAll.quantile(0.50))/(float64(bareAll.quantile(0.50))+1.5*float64(journalCommit)), "p50_of_budget")
	b.ReportMetric(durableAll.cpuPerEvent(), "durable_cpu_µs/event")
	b.ReportMetric(bareAll.cpuPerEvent(), "bare_cpu_µs/event")
	b.ReportMetric(commits.recordsPerCommit(), "records/commit")
	b.ReportMetric(commits.meanMicros(), "commit_µs")
}

// commitStats observes the journal's group commits.
type commitStats struct {
	mu      sync.Mutex
	commits int
	records int
	total   time.Duration
	each    []time.Duration
}

func (c *commitStats) observe(records int, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commits++
	c.records += records
	c.total += d
	c.each = append(c.each, d)
}

func (c *commitStats) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commits, c.records, c.total, c.each = 0, 0, 0, nil
}

func (c *commitStats) median() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.each) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(c.each))
	return s[len(s)/2]
}

func (c *commitStats) recordsPerCommit() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return float64(c.records) / float64(max(c.commits, 1))
}

func (c *commitStats) meanMicros() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return float64(c.total.Microseconds()) / float64(max(c.commits, 1))
}

func merge(runs []loadResult) loadResult {
	var out loadResult
	for _, r := range runs {
		out.elapsed += r.elapsed
		out.cpu += r.cpu
		out.latencies = append(out.latencies, r.latencies...)
	}
	slices.Sort(out.latencies)
	return out
}

// BenchmarkAcceptPath64 is the durable accept path at 64 concurrent
// connections, the client in this process.
func BenchmarkAcceptPath64(b *testing.B) { benchmarkAccept(b, 64, 20000, drive) }

// BenchmarkAcceptPath1 is one connection: the latency floor, the client
// in this process.
func BenchmarkAcceptPath1(b *testing.B) { benchmarkAccept(b, 1, 2000, drive) }

// BenchmarkAcceptLoad64 is the durable accept path at 64 connections with
// the client a process of its own, as a deployment sees it. Target:
// throughput_ratio ≥ 0.65.
//
//	go test -run '^$' -bench AcceptLoad -benchtime 3x -count 3 ./engine/
func BenchmarkAcceptLoad64(b *testing.B) { benchmarkAccept(b, 64, 20000, driveApart) }

// BenchmarkAcceptLoad1 is one connection, the client a process of its
// own. Target: p50_of_budget ≤ 1 (the bare p50 plus 1.5 journal commits).
func BenchmarkAcceptLoad1(b *testing.B) { benchmarkAccept(b, 1, 2000, driveApart) }

// driveApart is drive from a process of its own (this test binary again,
// running TestLoadClient: the load livehook-load sends), so the server's
// CPU is not shared with the client's runtime and is measured alone.
func driveApart(b *testing.B, url string, conns, n int, seq *atomic.Int64) loadResult {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	first := seq.Add(int64(n)) - int64(n)
	cmd := exec.Command(self, "-test.run", "^TestLoadClient$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("LIVEHOOK_LOAD_CLIENT=%s %d %d %d", url, conns, n, first))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cpu0 := processCPU(b)
	out, err := cmd.Output()
	cpu := processCPU(b) - cpu0
	if err != nil {
		b.Fatalf("load client: %v\n%s%s", err, out, stderr.Bytes())
	}
	for line := range strings.Lines(string(out)) {
		fields, ok := strings.CutPrefix(strings.TrimSpace(line), "load ")
		if !ok {
			continue
		}
		var r loadResult
		var failures int
		for i, f := range strings.Fields(fields) {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				b.Fatalf("load client: %q: %v", line, err)
			}
			switch i {
			case 0:
				failures = int(v)
			case 1:
				r.elapsed = time.Duration(v)
			default:
				r.latencies = append(r.latencies, time.Duration(v))
			}
		}
		if failures > 0 {
			b.Errorf("%d callbacks failed\n%s", failures, out)
		}
		r.cpu = cpu
		return r
	}
	b.Fatalf("load client printed no result:\n%s%s", out, stderr.Bytes())
	return loadResult{}
}

// TestLoadClient is driveApart's client process: it posts the callbacks
// LIVEHOOK_LOAD_CLIENT names (url, connections, count, first number) and
// prints the failures, the elapsed time and every latency, in ns.
func TestLoadClient(t *testing.T) {
	spec := os.Getenv("LIVEHOOK_LOAD_CLIENT")
	if spec == "" {
		t.Skip("run by BenchmarkAcceptLoad in a process of its own")
	}
	var url string
	var conns, n int
	var first int64
	if _, err := fmt.Sscanf(spec, "%s %d %d %d", &url, &conns, &n, &first); err != nil {
		t.Fatalf("LIVEHOOK_LOAD_CLIENT %q: %v", spec, err)
	}
	r := loadgen.Drive(context.Background(), loadgen.Options{URL: url, Conns: conns, N: n,
		Body: func(i int64) []byte { return recordingCallback(first + i) }})
	out := fmt.Appendf(nil, "load %d %d", r.Failures, r.Elapsed.Nanoseconds())
	for _, l := range r.Latencies {
		out = fmt.Appendf(out, " %d", l.Nanoseconds())
	}
	fmt.Printf("%s\n", out)
}

// processCPU is the user+system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
