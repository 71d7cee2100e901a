// Command livehook-load drives a running livehook over loopback with
// recording callbacks and reports throughput and latency, to measure a
// deployment the way Aliyun would load it.
//
//	livehook-load -url http://127.0.0.1:8080/callbacks/record -c 64 -d 10s
//
// Every callback names its own file, so none is a duplicate of another.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/callbacks/record", "where to POST callbacks")
	conns := flag.Int("c", 64, "concurrent connections")
	duration := flag.Duration("d", 10*time.Second, "how long to run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	if err := run(ctx, *url, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "livehook-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url string, conns int) error {
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
		Timeout:   10 * time.Second,
	}
	prefix := time.Now().UnixNano()
	var (
		seq      atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		all      []time.Duration
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				body := fmt.Appendf(nil, `{"domain":"load.example.com","app":"live","stream":"load","uri":"load/%d/%d.flv","duration":60,"start_time":1714564803,"stop_time":1714564863}`, prefix, seq.Add(1))
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					if ctx.Err() == nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(all) == 0 {
		return fmt.Errorf("no callback was accepted (first error: %v)", firstErr.Load())
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(int(p*float64(len(all))), len(all)-1)] }
	fmt.Printf("%d callbacks accepted in %s over %d connections: %.0f/s\n", len(all), elapsed.Round(time.Millisecond), conns, float64(len(all))/elapsed.Seconds())
	fmt.Printf("latency p50 %s  p99 %s  p99.9 %s  max %s\n", q(0.5), q(0.99), q(0.999), all[len(all)-1])
	if n := failures.Load(); n > 0 {
		fmt.Printf("%d failed (first: %v)\n", n, firstErr.Load())
	}
	return nil
}
