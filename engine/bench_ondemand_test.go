package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/intake"
)

// onDemandRules are 100 answer rules, one per customer's prefix, and the
// example's, which answers the benchmark's questions: the decision walks
// every one of them.
func onDemandRules() string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range 100 {
		fmt.Fprintf(&b, "  - name: customer-%d\n    when: app == \"live\" && stream startsWith \"c%d_\"\n    answer: { need_record: true, formats: [flv] }\n", i, i)
	}
	b.WriteString("  - name: record-on-request\n    when: stream startsWith \"rec_\"\n    answer: { need_record: true, formats: [mp4], interval: { mp4: 1800 } }\n")
	return b.String()
}

// BenchmarkOnDemandAnswer times on-demand questions answered by the real
// accept path (intake, rules, the embedded store's durable accept) on one
// connection, against recording callbacks through the same server in the
// same iteration: the baseline is what every accepted callback costs, the
// difference what deciding the answer adds. Aliyun waits 5 s at most; the
// target is an answer within 50 ms (ondemand_p99_ms).
func BenchmarkOnDemandAnswer(b *testing.B) {
	dir := b.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(onDemandRules()), 0o644); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	e, err := New(Options{RulesPath: rulesPath, Store: st, Logger: quiet, Metrics: reg,
		Registry: func() (*actionapi.Registry, error) { return logOnlyRegistry(b), nil }})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(intake.New(intake.Options{Acceptor: e, Logger: quiet, Metrics: reg}))
	defer func() {
		srv.Close()
		_ = e.Stop(context.Background())
		st.Close()
	}()
	client := srv.Client()
	seq := 0
	call := func(ask bool) time.Duration {
		seq++
		var req *http.Request
		if ask {
			req, _ = http.NewRequest(http.MethodGet, fmt.Sprintf("%s/callbacks/ondemand?domain=play.example.com&app=live&stream=rec_%d&codec=h264&vbitrate=2000", srv.URL, seq), nil)
		} else {
			body := fmt.Sprintf(`{"domain":"play.example.com","app":"live","stream":"rec_%d","uri":"live/rec/%d.flv","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`, seq, seq)
			req, _ = http.NewRequest(http.MethodPost, srv.URL+"/callbacks/record", strings.NewReader(body))
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		reply, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(t0)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %s", resp.StatusCode, reply)
		}
		if ask {
			var a struct{ NeedRecord bool }
			if json.Unmarshal(reply, &a) != nil || !a.NeedRecord || !bytes.Contains(reply, []byte(`"Mp4":1800`)) {
				b.Fatalf("answer %s, want the rule's", reply)
			}
		}
		return took
	}
	const perRound = 200
	for range perRound / 4 { // warm up
		call(true)
		call(false)
	}
	waitEvaluated(b, e)
	var asked, recorded []time.Duration
	b.ResetTimer()
	for range b.N {
		for range perRound {
			asked = append(asked, call(true))
			recorded = append(recorded, call(false))
		}
		b.StopTimer()
		waitEvaluated(b, e)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(asked)
	slices.Sort(recorded)
	q := func(all []time.Duration, p float64) time.Duration {
		return all[min(int(p*float64(len(all))), len(all)-1)]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(q(asked, 0.50)), "ondemand_p50_ms")
	b.ReportMetric(ms(q(asked, 0.99)), "ondemand_p99_ms")
	b.ReportMetric(ms(q(recorded, 0.50)), "record_p50_ms")
	b.ReportMetric(float64(q(asked, 0.50))/float64(q(recorded, 0.50)), "p50_ratio")
	b.ReportMetric(float64(q(asked, 0.99))/float64(q(recorded, 0.99)), "p99_ratio")
}
