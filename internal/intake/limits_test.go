package intake_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/intake"
)

func TestRatePerIP(t *testing.T) {
	hs := newHarness(t, nil, intake.Limits{RatePerIP: 0.5, RateBurst: 2})
	codes := func(remote string, n int) string {
		var out []string
		for range n {
			rec, _ := hs.post("/events/x", remote, `{}`, nil)
			out = append(out, fmt.Sprint(rec.Code))
			if rec.Code == 429 && rec.Header().Get("Retry-After") != "2" {
				t.Errorf("Retry-After = %q, want 2 (one request per 2 s)", rec.Header().Get("Retry-After"))
			}
		}
		return strings.Join(out, " ")
	}
	if got := codes("198.51.100.7:1", 3); got != "200 200 429" {
		t.Errorf("first client: %s, want a burst of 2 then 429", got)
	}
	if got := codes("198.51.100.8:1", 2); got != "200 200" {
		t.Errorf("another client is limited by the first one's use: %s", got)
	}
	hs.advance(2 * time.Second)
	if got := codes("198.51.100.7:1", 2); got != "200 429" {
		t.Errorf("after 2 s: %s, want one more request", got)
	}
	if hs.acc.n.Load() != 5 {
		t.Errorf("accepted %d, want 5", hs.acc.n.Load())
	}
}

// TestRateLimiterMemoryIsBounded: a flood from many addresses cannot grow
// the limiter without bound, and a busy client is still limited.
func TestRateLimiterMemoryIsBounded(t *testing.T) {
	hs := newHarness(t, nil, intake.Limits{RatePerIP: 0.001, RateBurst: 1})
	busy := "198.51.100.7:1"
	if rec, _ := hs.post("/events/x", busy, `{}`, nil); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	for i := range 20000 {
		hs.post("/events/x", fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255), `{}`, nil)
		if i%1000 == 0 { // the busy client keeps coming and stays limited
			if rec, _ := hs.post("/events/x", busy, `{}`, nil); rec.Code != 429 {
				t.Fatalf("busy client after %d others: %d, want 429", i, rec.Code)
			}
		}
	}
}

// TestConcurrencyCap: beyond MaxConcurrent requests in progress the answer
// is 503 at once; when they finish, requests are taken again.
func TestConcurrencyCap(t *testing.T) {
	hs := newHarness(t, nil, intake.Limits{MaxConcurrent: 2})
	hs.acc.hold = make(chan struct{})
	hs.acc.entry = make(chan struct{}, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rec, _ := hs.post("/events/x", peer, `{}`, nil); rec.Code != 200 {
				t.Errorf("held request: %d", rec.Code)
			}
		}()
	}
	<-hs.acc.entry
	<-hs.acc.entry
	rec, read := hs.post("/events/x", peer, `{}`, nil)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || read != 0 {
		t.Errorf("third request: %d Retry-After %q, %d bytes read; want 503 with Retry-After, unread", rec.Code, rec.Header().Get("Retry-After"), read)
	}
	close(hs.acc.hold)
	wg.Wait()
	hs.acc.entry = nil
	if rec, _ := hs.post("/events/x", peer, `{}`, nil); rec.Code != 200 {
		t.Errorf("after the others finished: %d", rec.Code)
	}
}

// TestSlowBodyIsCutOff: a client that trickles its body is cut off by the
// server's read timeout and told 408; the daemon keeps serving.
func TestSlowBodyIsCutOff(t *testing.T) {
	hs := newHarness(t, nil, intake.Limits{})
	srv := httptest.NewUnstartedServer(hs.h)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/events/x", pr)
	req.ContentLength = 100
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- nil
			return
		}
		done <- resp
	}()
	stop := make(chan struct{})
	go func() { // one byte every 100 ms: 10 s for the body
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := pw.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	defer close(stop)
	select {
	case resp := <-done:
		if resp == nil {
			t.Fatal("no reply: want 408")
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("status %d, want 408", resp.StatusCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the trickling client was not cut off within 5 s (read timeout 300 ms)")
	}
	pw.Close()
	if hs.acc.n.Load() != 0 {
		t.Error("the half-sent event was accepted")
	}
	resp, err := http.Post(srv.URL+"/events/x", "", strings.NewReader(`{}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the slow client: %v %v", resp, err)
	}
	resp.Body.Close()
}
