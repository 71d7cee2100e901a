package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/loadgen"

	"github.com/livehook/livehook/internal/testwait"
)

// BenchmarkForward is the daemon forwarding every recording callback to
// an HTTP service through a webhook action, against the same daemon with
// a log rule, in one run: accept → delivered, 32 connections. The figures:
//   - forward_of_log_accept: forwarding's end-to-end rate, the load sent as
//     fast as the daemon answers, over the rate the log rule's daemon
//     accepts at (the target: 0.8); forward_ratio is over the log rule's
//     own end-to-end rate.
//   - The sustained run: the forwarding daemon fed at a steady 80% of the
//     log rule's accept rate for 30 s, as Aliyun would send them.
//     sustained_accepted/s is the rate the daemon took them at: each
//     connection waits for its reply, so slow replies hold the client
//     below the rate asked. sustained_forward_of_log_accept is the rate
//     forwarded meanwhile over the log rule's accept rate (0.8 if intake
//     and forwarding keep pace), and backlog_max the most callbacks
//     accepted and not yet forwarded at any moment (sampled every 100 ms),
//     backlog_max_ms the same in time at the rate sent: bounded if
//     forwarding keeps pace with what is accepted, growing all along
//     if not. The held run does the same at 60% of the rate forwarding
//     reached with the load sent as fast as the daemon answers (a rate
//     that counts the drain after intake stopped; under steady intake the
//     two share the cores all along): held_forwarded/s and
//     held_backlog_max_ms.
//   - cpu_us_per_logged and cpu_us_per_forwarded: the CPU time of the
//     whole run (client, daemon and receiver share the process) per
//     callback, with the log rule and forwarding; cpu_us_per_hop is a bare
//     HTTP hop alone (the client posting to the receiver), the work
//     forwarding adds that is not the daemon's, and hop_share_of_forward
//     its share of forwarding's cost.
//
// With adnanh/webhook installed (Debian's package `webhook`), the same run
// also measures it forwarding the same callbacks through curl, its usual
// set-up (a command per event), answering each once curl is done:
// forward_over_webhook_curl is livehook's forwarding rate over that.
//
//	go test -run '^$' -bench Forward -benchtime 1x ./cmd/livehook/
func BenchmarkForward(b *testing.B) {
	const conns, n, sustain = 32, 20_000, 30 * time.Second
	var received atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { received.Add(1) }))
	defer rc.Close()
	rules := map[string]string{
		"log":     "actions:\n  out: { type: log, level: debug }\nrules:\n  - name: every-file\n    when: kind == \"file\"\n    do: [ { action: out } ]\n",
		"webhook": "actions:\n  out: { type: webhook, url: " + rc.URL + "/hook }\nrules:\n  - name: every-file\n    when: kind == \"file\"\n    do: [ { action: out } ]\n",
	}
	rate := map[string]float64{}
	accept := map[string]float64{}
	cpu := map[string]time.Duration{}
	var target, held steadyRun
	for i := range b.N {
		c0 := cpuTime(b)
		r := loadgen.Drive(context.Background(), loadgen.Options{URL: rc.URL + "/hook", Conns: conns, N: n, Body: loadgen.FileCallback(fmt.Sprint("hop", i))})
		if r.Failures > 0 {
			b.Fatalf("bare hop: %d failed, first: %s", r.Failures, r.FirstErr)
		}
		cpu["hop"] += cpuTime(b) - c0
		for _, kind := range []string{"log", "webhook"} {
			d, stop := startForwardDaemon(b, rules[kind])
			received.Store(0)
			c0 := cpuTime(b)
			start := time.Now()
			r := loadgen.Drive(context.Background(), loadgen.Options{URL: "http://" + d.public.Addr().String() + "/callbacks/record",
				Conns: conns, N: n, Body: loadgen.FileCallback(fmt.Sprint(kind, i))})
			if r.Failures > 0 {
				b.Fatalf("%s: %d callbacks failed, first: %s", kind, r.Failures, r.FirstErr)
			}
			waitDelivered(b, d)
			cpu[kind] += cpuTime(b) - c0
			rate[kind] = float64(n) / time.Since(start).Seconds()
			accept[kind] = r.PerSecond()
			if kind == "webhook" && received.Load() < n {
				b.Fatalf("the receiver got %d of %d", received.Load(), n)
			}
			stop()
		}

		steady := func(name string, offered float64) steadyRun {
			d, stop := startForwardDaemon(b, rules["webhook"])
			defer stop()
			received.Store(0)
			sampled := make(chan int64)
			ctx, cancel := context.WithCancel(context.Background())
			go func() { sampled <- sampleBacklog(ctx, b, d) }()
			total := int(offered * sustain.Seconds())
			r := loadgen.Drive(context.Background(), loadgen.Options{URL: "http://" + d.public.Addr().String() + "/callbacks/record",
				Conns: conns, N: total, Rate: offered, Body: loadgen.FileCallback(fmt.Sprint(name, i))})
			forwarded := received.Load()
			cancel()
			most := <-sampled
			if r.Failures > 0 {
				b.Fatalf("%s: %d callbacks failed, first: %s", name, r.Failures, r.FirstErr)
			}
			waitDelivered(b, d)
			if received.Load() < int64(total) {
				b.Fatalf("%s: the receiver got %d of %d", name, received.Load(), total)
			}
			return steadyRun{offered: offered, accepted: r.PerSecond(), forwarded: float64(forwarded) / r.Elapsed.Seconds(), backlogMax: float64(most)}
		}
		target = steady("sustained", 0.8*accept["log"])
		held = steady("held", 0.6*rate["webhook"])
	}
	b.ReportMetric(rate["log"], "log_delivered/s")
	b.ReportMetric(rate["webhook"], "forwarded/s")
	b.ReportMetric(accept["webhook"], "forward_accepted/s")
	b.ReportMetric(accept["log"], "log_accepted/s")
	b.ReportMetric(rate["webhook"]/accept["log"], "forward_of_log_accept")
	b.ReportMetric(rate["webhook"]/rate["log"], "forward_ratio")
	perCallback := func(kind string) float64 { return float64(cpu[kind].Microseconds()) / float64(n*b.N) }
	b.ReportMetric(perCallback("log"), "cpu_us_per_logged")
	b.ReportMetric(perCallback("webhook"), "cpu_us_per_forwarded")
	b.ReportMetric(perCallback("hop"), "cpu_us_per_hop")
	b.ReportMetric(perCallback("hop")/perCallback("webhook"), "hop_share_of_forward")
	b.ReportMetric(target.offered, "sustained_offered/s")
	b.ReportMetric(target.accepted, "sustained_accepted/s")
	b.ReportMetric(target.forwarded, "sustained_forwarded/s")
	b.ReportMetric(target.forwarded/accept["log"], "sustained_forward_of_log_accept")
	b.ReportMetric(target.backlogMax, "backlog_max")
	b.ReportMetric(target.backlogMax/target.offered*1000, "backlog_max_ms")
	b.ReportMetric(held.offered, "held_offered/s")
	b.ReportMetric(held.forwarded, "held_forwarded/s")
	b.ReportMetric(held.backlogMax/held.offered*1000, "held_backlog_max_ms")
	if curl := webhookCurlRate(b, conns, rc.URL+"/hook", &received); curl > 0 {
		b.ReportMetric(curl, "webhook_curl_forwarded/s")
		b.ReportMetric(rate["webhook"]/curl, "forward_over_webhook_curl")
	}
}

// steadyRun is the forwarding daemon fed at a steady rate.
type steadyRun struct {
	offered, accepted, forwarded float64 // callbacks a second
	backlogMax                   float64 // callbacks accepted and not yet forwarded, at most
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startForwardDaemon serves rules from a fresh data directory until stop.
func startForwardDaemon(b *testing.B, rules string) (d *daemon, stop func()) {
	dir := b.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	writeFile(b, path, rules)
	d, err := newDaemon(serveConfig{rules: path, data: filepath.Join(dir, "data"), listen: "127.0.0.1:0", admin: "127.0.0.1:0",
		shutdownTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.serve(ctx) }()
	<-d.ready
	return d, func() {
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// waitDelivered waits until every accepted callback is evaluated and
// delivered.
func waitDelivered(b *testing.B, d *daemon) {
	testwait.Until(b, 2*time.Minute, "every accepted callback delivered", func() bool {
		st, err := d.store.Stats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return st.Unevaluated == 0 && st.Pending == 0
	})
}

// sampleBacklog is the most callbacks waiting for evaluation or delivery
// at once, sampled every 100 ms until ctx ends.
func sampleBacklog(ctx context.Context, b *testing.B, d *daemon) int64 {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var most int64
	for {
		select {
		case <-ctx.Done():
			return most
		case <-tick.C:
		}
		st, err := d.store.Stats(context.Background())
		if err != nil {
			b.Error(err)
			return most
		}
		most = max(most, int64(st.Unevaluated+st.Pending))
	}
}

// webhookCurlRate is the end-to-end rate of adnanh/webhook forwarding
// recording callbacks to target through curl, one process per callback;
// 0 if it is not installed.
func webhookCurlRate(b *testing.B, conns int, target string, received *atomic.Int64) float64 {
	const n = 2_000 // a process each: fewer, or the run takes minutes
	bin, err := exec.LookPath("webhook")
	if err != nil {
		b.Log("adnanh/webhook is not installed (apt-get install webhook): no comparison with it")
		return 0
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		b.Log("curl is not installed: no comparison with adnanh/webhook")
		return 0
	}
	arg := func(v string) map[string]string { return map[string]string{"source": "string", "name": v} }
	hooks, err := json.Marshal([]map[string]any{{
		"id": "forward", "execute-command": curl, "include-command-output-in-response": true,
		"pass-arguments-to-command": []any{arg("-sS"), arg("-o"), arg("/dev/null"), arg("-H"), arg("Content-Type: application/json"),
			arg("--data-binary"), map[string]string{"source": "entire-payload"}, arg(target)},
	}})
	if err != nil {
		b.Fatal(err)
	}
	hooksPath := filepath.Join(b.TempDir(), "hooks.json")
	writeFile(b, hooksPath, string(hooks))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close() // webhook takes a port number, not a listener
	cmd := exec.Command(bin, "-hooks", hooksPath, "-ip", "127.0.0.1", "-port", strconv.Itoa(addr.Port))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	testwait.Until(b, 10*time.Second, "adnanh/webhook to listen", func() bool {
		c, err := net.Dial("tcp", addr.String())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	received.Store(0)
	start := time.Now()
	r := loadgen.Drive(context.Background(), loadgen.Options{URL: "http://" + addr.String() + "/hooks/forward",
		Conns: conns, N: n, Body: loadgen.FileCallback("curl")})
	if r.Failures > 0 {
		b.Fatalf("adnanh/webhook: %d callbacks failed, first: %s", r.Failures, r.FirstErr)
	}
	testwait.Until(b, time.Minute, "every callback forwarded by curl", func() bool { return received.Load() >= n })
	return float64(n) / time.Since(start).Seconds()
}
