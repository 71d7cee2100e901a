package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A paced load sends every callback, none before its time: the last of n
// at rate r no sooner than (n-1)/r after the start, however fast the
// answers come.
func TestRatePacesTheLoad(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	const n, rate = 21, 200.0
	r := Drive(context.Background(), Options{URL: srv.URL, Conns: 4, N: n, Rate: rate, Body: FileCallback("t")})
	if r.Failures > 0 || len(r.Latencies) != n || got.Load() != n {
		t.Fatalf("%d answered, %d received, %d failed (%s); want all %d", len(r.Latencies), got.Load(), r.Failures, r.FirstErr, n)
	}
	if floor := time.Duration(float64(n-1) / rate * float64(time.Second)); r.Elapsed < floor {
		t.Errorf("%d callbacks at %.0f/s took %s, want at least %s", n, rate, r.Elapsed, floor)
	}
}

// Unpaced, the load sends as fast as answers come and stops at N.
func TestDriveSendsN(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	r := Drive(context.Background(), Options{URL: srv.URL, Conns: 3, N: 50, Body: FileCallback("t")})
	if len(r.Latencies) != 50 || got.Load() != 50 || r.PerSecond() <= 0 {
		t.Errorf("%d answered, %d received; want 50", len(r.Latencies), got.Load())
	}
}
