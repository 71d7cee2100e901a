//go:build unix

package provider_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/plugins/internal/buildplugin"
	"github.com/livehook/livehook/plugins/internal/plugintest"
)

// These benchmarks back the choice of a process per delivery in
// docs/plugins.md: what one delivery through a small Go plugin costs,
// what starting any process costs on the same machine in the same run
// (/bin/true), and what a long-running plugin would save at best (a JSON
// line through the pipes of a process that is already running).
//
//	go test -run '^$' -bench . -benchtime 500x ./plugins/provider/

// latencies collects durations from parallel benchmark goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return
	}
	b.ReportMetric(float64(l.d[len(l.d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.d[len(l.d)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "deliveries/s")
}

func BenchmarkProcessPerDelivery(b *testing.B) {
	dir := b.TempDir()
	root, err := buildplugin.ModuleRoot(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if err := buildplugin.Build(context.Background(), root, dir, []string{"examples/echo"}, io.Discard); err != nil {
		b.Fatal(err)
	}
	set, err := plugintest.Load(b, dir, nil, `rules:
  - name: r
    do:
      - type: echo
        with: {text: "{{ .stream }} failed"}
`, nil)
	if err != nil {
		b.Fatal(err)
	}
	step := set.Rules[0].Steps[0].Step
	ev := plugintest.Event("ev1", "room42")
	deliver := func(b *testing.B, l *latencies) {
		t0 := time.Now()
		plan, err := step.Plan(actionapi.Input{Event: ev, Rule: "r", DeliveryID: "ev1.r.0"})
		if err != nil {
			b.Fatal(err)
		}
		if res := step.Do(context.Background(), plan); res.Outcome != actionapi.Delivered {
			b.Fatalf("result %+v", res)
		}
		l.add(time.Since(t0))
	}
	b.Run("concurrent=1", func(b *testing.B) {
		var l latencies
		start := time.Now()
		for b.Loop() {
			deliver(b, &l)
		}
		l.report(b, time.Since(start))
	})
	for _, procs := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("concurrent=%d", procs*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			var l latencies
			b.SetParallelism(procs) // goroutines per GOMAXPROCS: deliveries at once, as the engine's workers make them
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					deliver(b, &l)
				}
			})
			l.report(b, time.Since(start))
		})
	}
}

func BenchmarkExecTrue(b *testing.B) {
	var l latencies
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		l.add(time.Since(t0))
	}
	l.report(b, time.Since(start))
}

func BenchmarkLongRunningRoundTrip(b *testing.B) {
	// cat answers each line with itself: a lower bound on a long-running
	// plugin's cost per delivery, with no decoding and no work.
	cmd := exec.Command("cat")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { in.Close(); _ = cmd.Wait() }()
	r := bufio.NewReader(out)
	line := []byte(`{"protocol":1,"plugin":"echo","delivery_id":"ev1.r.0","settings":{},"params":{"text":"room42 failed"},"event":{"id":"ev1"}}` + "\n")
	var l latencies
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		if _, err := in.Write(line); err != nil {
			b.Fatal(err)
		}
		if _, err := r.ReadBytes('\n'); err != nil {
			b.Fatal(err)
		}
		l.add(time.Since(t0))
	}
	l.report(b, time.Since(start))
}
