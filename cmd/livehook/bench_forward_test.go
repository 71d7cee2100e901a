package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/loadgen"

	"github.com/livehook/livehook/internal/testwait"
)

// BenchmarkForward is the daemon forwarding every recording callback to
// an HTTP service through a webhook action, against the same daemon with
// a log rule, in one run: accept → delivered, 32 connections. The figures
// are forward_of_log_accept, forwarding's end-to-end rate over the rate
// the log rule's daemon accepts at (the target: 0.8), and forward_ratio,
// over the log rule's own end-to-end rate.
//
// With adnanh/webhook installed (Debian's package `webhook`), the same run
// also measures it forwarding the same callbacks through curl, its usual
// set-up (a command per event), answering each once curl is done:
// forward_over_webhook_curl is livehook's forwarding rate over that.
//
//	go test -run '^$' -bench Forward -benchtime 1x ./cmd/livehook/
func BenchmarkForward(b *testing.B) {
	const conns, n = 32, 20_000
	var received atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { received.Add(1) }))
	defer rc.Close()
	rules := map[string]string{
		"log":     "actions:\n  out: { type: log, level: debug }\nrules:\n  - name: every-file\n    when: kind == \"file\"\n    do: [ { action: out } ]\n",
		"webhook": "actions:\n  out: { type: webhook, url: " + rc.URL + "/hook }\nrules:\n  - name: every-file\n    when: kind == \"file\"\n    do: [ { action: out } ]\n",
	}
	rate := map[string]float64{}
	accept := map[string]float64{}
	for i := range b.N {
		for _, kind := range []string{"log", "webhook"} {
			dir := b.TempDir()
			path := filepath.Join(dir, "rules.yaml")
			if err := os.WriteFile(path, []byte(rules[kind]), 0o644); err != nil {
				b.Fatal(err)
			}
			d, err := newDaemon(serveConfig{rules: path, data: filepath.Join(dir, "data"), listen: "127.0.0.1:0", admin: "127.0.0.1:0",
				shutdownTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.serve(ctx) }()
			<-d.ready
			received.Store(0)
			start := time.Now()
			r := loadgen.Drive(context.Background(), loadgen.Options{URL: "http://" + d.public.Addr().String() + "/callbacks/record",
				Conns: conns, N: n, Body: loadgen.FileCallback(fmt.Sprint(kind, i))})
			if r.Failures > 0 {
				b.Fatalf("%s: %d callbacks failed, first: %s", kind, r.Failures, r.FirstErr)
			}
			testwait.Until(b, time.Minute, "every accepted callback delivered", func() bool {
				st, err := d.store.Stats(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				return st.Unevaluated == 0 && st.Pending == 0
			})
			rate[kind] = float64(n) / time.Since(start).Seconds()
			accept[kind] = r.PerSecond()
			if kind == "webhook" && received.Load() < n {
				b.Fatalf("the receiver got %d of %d", received.Load(), n)
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(rate["log"], "log_delivered/s")
	b.ReportMetric(rate["webhook"], "forwarded/s")
	b.ReportMetric(accept["webhook"], "forward_accepted/s")
	b.ReportMetric(accept["log"], "log_accepted/s")
	b.ReportMetric(rate["webhook"]/accept["log"], "forward_of_log_accept")
	b.ReportMetric(rate["webhook"]/rate["log"], "forward_ratio")
	if curl := webhookCurlRate(b, conns, rc.URL+"/hook", &received); curl > 0 {
		b.ReportMetric(curl, "webhook_curl_forwarded/s")
		b.ReportMetric(rate["webhook"]/curl, "forward_over_webhook_curl")
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
