// Package loadgen posts callbacks over keep-alive connections and times
// each: the load of livehook-load and of the benchmarks.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options say what to send.
type Options struct {
	URL string
	// URLs, when set, replace URL: connection i posts to URLs[i%len(URLs)],
	// spreading one load over several replicas as a load balancer would.
	URLs  []string
	Conns int
	// N is how many callbacks to send; 0 sends until ctx ends.
	N int
	// Body is the nth callback's body; every callback should differ, so
	// that none is a duplicate of another.
	Body func(n int64) []byte
	// Rate, when set, paces the load at that many callbacks a second in
	// all, the nth sent no sooner than n/Rate seconds after the start, as
	// a steady source would send them; 0 sends as fast as answers come.
	Rate float64
}

// Result is one run.
type Result struct {
	Elapsed   time.Duration
	Latencies []time.Duration // of the callbacks answered 200, sorted
	Failures  int64
	FirstErr  string
}

// PerSecond is the rate of callbacks answered 200.
func (r Result) PerSecond() float64 { return float64(len(r.Latencies)) / r.Elapsed.Seconds() }

// Quantile is a latency quantile of the callbacks answered 200.
func (r Result) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[min(int(q*float64(len(r.Latencies))), len(r.Latencies)-1)]
}

// FileCallback is a recording file callback whose uri carries n, under
// a prefix that keeps runs apart.
func FileCallback(prefix string) func(n int64) []byte {
	return func(n int64) []byte {
		return fmt.Appendf(nil, `{"domain":"load.example.com","app":"live","stream":"load","uri":"load/%s/%d.flv","duration":60,"start_time":1714564803,"stop_time":1714564863}`, prefix, n)
	}
}

// Drive sends the load and waits for every answer.
func Drive(ctx context.Context, o Options) Result {
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: o.Conns, MaxConnsPerHost: o.Conns},
		Timeout:   10 * time.Second,
	}
	defer client.CloseIdleConnections()
	var (
		seq      atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		mu       sync.Mutex
		all      []time.Duration
		wg       sync.WaitGroup
	)
	fail := func(err string) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	urls := o.URLs
	if len(urls) == 0 {
		urls = []string{o.URL}
	}
	start := time.Now()
	for i := range o.Conns {
		url := urls[i%len(urls)]
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil {
				n := seq.Add(1)
				if o.N > 0 && n > int64(o.N) {
					break
				}
				if o.Rate > 0 {
					// Each connection's next send is at most conns/Rate
					// away: a wait past ctx's end is that short.
					time.Sleep(time.Until(start.Add(time.Duration(float64(n-1) / o.Rate * float64(time.Second)))))
					if ctx.Err() != nil {
						break
					}
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(o.Body(n)))
				if err != nil {
					if ctx.Err() == nil {
						fail(err.Error())
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fail(resp.Status)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r := Result{Elapsed: time.Since(start), Latencies: all, Failures: failures.Load()}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstErr = e
	}
	slices.Sort(r.Latencies)
	return r
}
