// Command livehook-load drives a running livehook over loopback with
// recording callbacks and reports throughput and latency, to measure a
// deployment the way Aliyun would load it.
//
//	livehook-load -url http://127.0.0.1:8080/callbacks/record -c 64 -d 10s
//	livehook-load -c 32 -rate 3000 -d 30s   # a steady 3,000 callbacks a second
//
// Every callback names its own file, so none is a duplicate of another.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/livehook/livehook/internal/loadgen"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/callbacks/record", "where to POST callbacks")
	conns := flag.Int("c", 64, "concurrent connections")
	duration := flag.Duration("d", 10*time.Second, "how long to run")
	rate := flag.Float64("rate", 0, "callbacks a second in all, paced as a steady source sends them (default: as fast as answers come)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	r := loadgen.Drive(ctx, loadgen.Options{URL: *url, Conns: *conns, Rate: *rate, Body: loadgen.FileCallback(fmt.Sprint(time.Now().UnixNano()))})
	if len(r.Latencies) == 0 {
		fmt.Fprintf(os.Stderr, "livehook-load: no callback was accepted (first error: %s)\n", r.FirstErr)
		os.Exit(1)
	}
	fmt.Printf("%d callbacks accepted in %s over %d connections: %.0f/s\n", len(r.Latencies), r.Elapsed.Round(time.Millisecond), *conns, r.PerSecond())
	fmt.Printf("latency p50 %s  p99 %s  p99.9 %s  max %s\n", r.Quantile(0.5), r.Quantile(0.99), r.Quantile(0.999), r.Latencies[len(r.Latencies)-1])
	if r.Failures > 0 {
		fmt.Printf("%d failed (first: %s)\n", r.Failures, r.FirstErr)
	}
}
