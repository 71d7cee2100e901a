package actionapi

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// reply is one scripted answer of the fake service.
type reply struct {
	status     int
	body       string
	retryAfter string
	hangUp     bool // close the connection without answering
}

// scripted is a service that answers each request with the next reply
// (the last one repeats) and records the bodies it was sent.
type scripted struct {
	mu      sync.Mutex
	replies []reply
	bodies  []string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.bodies)
	s.bodies = append(s.bodies, string(b))
	rep := s.replies[min(n, len(s.replies)-1)]
	s.mu.Unlock()
	if rep.hangUp {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (s *scripted) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// fastClient retries with tiny backoffs, so tests do not sleep.
func fastClient(attempts int) *retryablehttp.Client {
	return NewHTTP(nil).Client(HTTPOptions{
		Timeout: 10 * time.Second,
		Retry:   RetryPolicy{Attempts: attempts, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
	})
}

func post(t *testing.T, c *retryablehttp.Client, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := retryablehttp.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(req)
}

func TestClientRetries(t *testing.T) {
	tests := []struct {
		name       string
		attempts   int
		replies    []reply
		wantCalls  int
		wantStatus int // 0: want a transport error
		wantBody   string
		wantResult Outcome
	}{
		{"500 then 200", 3, []reply{{status: 500}, {status: 200, body: "ok"}}, 2, 200, "ok", Delivered},
		{"408 then 200", 3, []reply{{status: 408}, {status: 200, body: "ok"}}, 2, 200, "ok", Delivered},
		{"429 then 200", 3, []reply{{status: 429}, {status: 204}}, 2, 204, "", Delivered},
		{"502 503 then 200", 3, []reply{{status: 502}, {status: 503}, {status: 200, body: "third"}}, 3, 200, "third", Delivered},
		{"dropped connection then 200", 3, []reply{{hangUp: true}, {status: 200, body: "ok"}}, 2, 200, "ok", Delivered},
		{"404 is not retried", 3, []reply{{status: 404, body: "no such robot"}}, 1, 404, "no such robot", Permanent},
		{"400 is not retried", 3, []reply{{status: 400, body: "bad"}}, 1, 400, "bad", Permanent},
		{"501 is not retried", 3, []reply{{status: 501}}, 1, 501, "", Permanent},
		{"attempts run out: the last reply is handed back", 3,
			[]reply{{status: 500, body: "one"}, {status: 502, body: "two"}, {status: 503, body: "three"}}, 3, 503, "three", Retryable},
		{"one attempt means no retry", 1, []reply{{status: 500, body: "x"}}, 1, 500, "x", Retryable},
		{"attempts run out on dropped connections", 2, []reply{{hangUp: true}}, 2, 0, "", Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &scripted{replies: tt.replies}
			srv := httptest.NewServer(svc)
			defer srv.Close()
			resp, err := post(t, fastClient(tt.attempts), srv.URL, `{"n":1}`)
			calls := svc.calls()
			if len(calls) != tt.wantCalls {
				t.Errorf("service called %d times, want %d", len(calls), tt.wantCalls)
			}
			for i, b := range calls {
				if b != `{"n":1}` {
					t.Errorf("attempt %d sent body %q, want the same body every time", i+1, b)
				}
			}
			if tt.wantStatus == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want a transport error", resp.StatusCode)
				}
			} else {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
				}
			}
			res, body := HTTPResult(resp, err)
			if res.Outcome != tt.wantResult {
				t.Errorf("outcome = %v, want %v (%s)", res.Outcome, tt.wantResult, res.Detail)
			}
			if string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestClientHonoursRetryAfter(t *testing.T) {
	svc := &scripted{replies: []reply{{status: 429, retryAfter: "1"}, {status: 200}}}
	srv := httptest.NewServer(svc)
	defer srv.Close()
	start := time.Now()
	resp, err := post(t, fastClient(3), srv.URL, "x") // max backoff is 5ms: only Retry-After can make it wait
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(svc.calls()) != 2 {
		t.Fatalf("status %d after %d calls, want 200 after 2", resp.StatusCode, len(svc.calls()))
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("retried after %v, want the 1s the service asked for", waited)
	}
}

// A Retry-After longer than a quick retry may wait ends the attempt at
// once; HTTPResult hands the wait on, for the runner to schedule.
func TestClientLeavesALongRetryAfterToTheRunner(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		wantCalls  int
		wantAfter  time.Duration
		wantResult Outcome
	}{
		{"120s: the next attempt is the runner's", "120", 1, 120 * time.Second, Retryable},
		{"as an HTTP date", time.Now().Add(10 * time.Minute).UTC().Format(http.TimeFormat), 1, 10 * time.Minute, Retryable},
		{"beyond an hour is an hour", "86400", 1, time.Hour, Retryable},
		{"up to 10s is waited out", "0", 2, 0, Delivered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &scripted{replies: []reply{{status: 429, body: "slow down", retryAfter: tt.retryAfter}, {status: 200}}}
			srv := httptest.NewServer(svc)
			defer srv.Close()
			start := time.Now()
			res, _ := HTTPResult(post(t, fastClient(3), srv.URL, "x"))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v: the attempt slept instead of ending", took)
			}
			if n := len(svc.calls()); n != tt.wantCalls {
				t.Errorf("service called %d times, want %d", n, tt.wantCalls)
			}
			// An HTTP date is whole seconds and relative to now.
			if res.Outcome != tt.wantResult || res.RetryAfter > tt.wantAfter || res.RetryAfter < tt.wantAfter-2*time.Second {
				t.Errorf("result %v %q, retry after %v; want %v, %v", res.Outcome, res.Detail, res.RetryAfter, tt.wantResult, tt.wantAfter)
			}
		})
	}
}

func TestCheckRetryBoundsTheWaitInAnAttempt(t *testing.T) {
	for v, want := range map[string]bool{"": true, "1": true, "10": true, "11": false, "120": false, "soon": true} {
		resp := &http.Response{StatusCode: 503, Header: http.Header{}}
		if v != "" {
			resp.Header.Set("Retry-After", v)
		}
		if got, err := checkRetry(context.Background(), resp, nil); got != want || err != nil {
			t.Errorf("503 with Retry-After %q: retry %v, %v; want %v", v, got, err, want)
		}
	}
}

func TestClientTimeoutPerAttempt(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := NewHTTP(nil).Client(HTTPOptions{Timeout: 50 * time.Millisecond, Retry: RetryPolicy{Attempts: 1}})
	resp, err := post(t, c, srv.URL, "x")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want a timeout", resp.StatusCode)
	}
	if res, _ := HTTPResult(resp, err); res.Outcome != Retryable {
		t.Errorf("timeout outcome = %v, want retryable", res.Outcome)
	}
}

func TestClientStopsWhenCancelled(t *testing.T) {
	svc := &scripted{replies: []reply{{status: 503}}}
	srv := httptest.NewServer(svc)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := NewHTTP(nil).Client(HTTPOptions{Retry: RetryPolicy{Attempts: 5, MinBackoff: time.Hour, MaxBackoff: time.Hour}})
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	// Cancelled as the client starts its hour-long wait for the retry.
	backoff := c.Backoff
	c.Backoff = func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
		defer cancel()
		return backoff(lo, hi, attempt, resp)
	}
	_, err = c.Do(req)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := len(svc.calls()); n != 1 {
		t.Errorf("service called %d times, want 1", n)
	}
}

// Two instances of one host delivering 64 at once each (webhooks'
// default), then again: the second round reuses the first's connections
// instead of dialling new ones.
func TestPoolKeepsConnectionsOfInstancesSharingAHost(t *testing.T) {
	const perInstance, instances = 64, 2
	const n = perInstance * instances
	// Each round's requests are answered once all of them are in flight,
	// so each needs a connection of its own.
	type barrier struct {
		left int
		all  chan struct{}
	}
	var mu sync.Mutex
	rounds := map[string]*barrier{"/first": {n, make(chan struct{})}, "/second": {n, make(chan struct{})}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b := rounds[r.URL.Path]
		if b.left--; b.left == 0 {
			close(b.all)
		}
		mu.Unlock()
		select {
		case <-b.all:
			io.WriteString(w, "ok")
		case <-r.Context().Done(): // the client gave up: the test fails on its error
		}
	}))
	defer srv.Close()
	h := NewHTTP(nil)
	pool := h.transport.(sharedTransport).RoundTripper.(*http.Transport)
	dials := 0
	dial := pool.DialContext
	pool.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		return dial(ctx, network, addr)
	}
	clients := []*retryablehttp.Client{h.Client(HTTPOptions{}), h.Client(HTTPOptions{})}
	round := func(path string) int {
		mu.Lock()
		before := dials
		mu.Unlock()
		var done sync.WaitGroup
		for i := range n {
			done.Go(func() {
				resp, err := post(t, clients[i%instances], srv.URL+path, "{}")
				if err != nil {
					t.Error(err)
					return
				}
				// Read to the end: net/http puts the connection back in
				// the pool before the read returns.
				if _, err := io.ReadAll(resp.Body); err != nil {
					t.Error(err)
				}
				resp.Body.Close()
			})
		}
		done.Wait()
		mu.Lock()
		defer mu.Unlock()
		return dials - before
	}
	if got := round("/first"); got != n {
		t.Fatalf("first round dialled %d connections, want %d", got, n)
	}
	if got := round("/second"); got != 0 {
		t.Errorf("second round dialled %d new connections, want 0: the pool dropped idle ones", got)
	}
}

func TestClientDefaults(t *testing.T) {
	tests := []struct {
		name         string
		in           HTTPOptions
		timeout      time.Duration
		retryMax     int
		waitMin, max time.Duration
	}{
		{"zero value", HTTPOptions{}, DefaultTimeout, DefaultAttempts - 1, DefaultMinBackoff, DefaultMaxBackoff},
		{"negative values", HTTPOptions{Timeout: -1, Retry: RetryPolicy{Attempts: -3, MinBackoff: -1, MaxBackoff: -1}},
			DefaultTimeout, DefaultAttempts - 1, DefaultMinBackoff, DefaultMaxBackoff},
		{"as given", HTTPOptions{Timeout: time.Second, Retry: RetryPolicy{Attempts: 5, MinBackoff: time.Second, MaxBackoff: time.Minute}},
			time.Second, 4, time.Second, time.Minute},
		{"max below min is raised to min", HTTPOptions{Retry: RetryPolicy{MinBackoff: 2 * time.Second, MaxBackoff: time.Second}},
			DefaultTimeout, DefaultAttempts - 1, 2 * time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewHTTP(nil).Client(tt.in)
			if c.HTTPClient.Timeout != tt.timeout || c.RetryMax != tt.retryMax || c.RetryWaitMin != tt.waitMin || c.RetryWaitMax != tt.max {
				t.Errorf("timeout %v retryMax %d wait %v..%v, want %v %d %v..%v",
					c.HTTPClient.Timeout, c.RetryMax, c.RetryWaitMin, c.RetryWaitMax, tt.timeout, tt.retryMax, tt.waitMin, tt.max)
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	tests := []struct {
		name     string
		min, max time.Duration
	}{
		{"defaults", DefaultMinBackoff, DefaultMaxBackoff},
		{"equal", time.Second, time.Second},
		{"nanoseconds", 1, 3},
		{"odd minimum", 3 * time.Millisecond, 7 * time.Second},
		{"long minimum", 20 * time.Minute, time.Hour},
		// min<<attempt wraps around to a value below min at attempt 24.
		{"shift overflow below the minimum", 54*time.Minute + 58535*time.Millisecond, time.Hour},
		{"huge", 1 << 40, 1 << 62},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for attempt := range 100 {
				ceil := tt.max // min doubled per attempt, up to max
				if c := float64(tt.min) * math.Pow(2, float64(attempt)); c < float64(tt.max) {
					ceil = time.Duration(c)
				}
				for range 20 {
					d := safeBackoff(t, tt.min, tt.max, attempt)
					if d < tt.min || d > ceil {
						t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, tt.min, ceil)
					}
				}
			}
		})
	}
	if d := backoff(time.Second, time.Minute, 0, nil); d != time.Second {
		t.Errorf("first backoff = %v, want exactly the minimum", d)
	}
}

// safeBackoff reports a panic as a test failure, so one bad case does not
// hide the others.
func safeBackoff(t *testing.T, min, max time.Duration, attempt int) (d time.Duration) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("backoff(%v, %v, %d) panicked: %v", min, max, attempt, p)
		}
	}()
	return backoff(min, max, attempt, nil)
}

func TestBackoffRetryAfter(t *testing.T) {
	resp := func(v string) *http.Response {
		return &http.Response{Header: http.Header{"Retry-After": []string{v}}}
	}
	tests := []struct {
		name string
		v    string
		want time.Duration
	}{
		{"seconds above max backoff", "7", 7 * time.Second},
		{"zero", "0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := backoff(time.Millisecond, 2*time.Millisecond, 3, resp(tt.v)); d != tt.want {
				t.Errorf("backoff = %v, want %v", d, tt.want)
			}
		})
	}
	// An unusable header falls back to the computed backoff.
	if d := backoff(time.Millisecond, 2*time.Millisecond, 3, resp("soon")); d < time.Millisecond || d > 2*time.Millisecond {
		t.Errorf("backoff with a bad Retry-After = %v", d)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   time.Duration
		slack  time.Duration // allowed shortfall for dates, which are relative to now
		ok     bool
	}{
		{name: "absent", header: "", ok: false},
		{name: "seconds", header: "7", want: 7 * time.Second, ok: true},
		{name: "spaces", header: " 7 ", want: 7 * time.Second, ok: true},
		{name: "negative is now", header: "-5", want: 0, ok: true},
		{name: "an hour", header: "3600", want: time.Hour, ok: true},
		{name: "bounded", header: "7200", want: time.Hour, ok: true},
		{name: "overflowing seconds stay bounded", header: "99999999999999", want: time.Hour, ok: true},
		{name: "garbage", header: "soon", ok: false},
		{name: "date in the past", header: time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), want: 0, ok: true},
		{name: "date ahead", header: time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat), want: 2 * time.Minute, slack: 5 * time.Second, ok: true},
		{name: "date far ahead", header: time.Now().Add(24 * time.Hour).UTC().Format(http.TimeFormat), want: time.Hour, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{}}
			if tt.header != "" {
				resp.Header.Set("Retry-After", tt.header)
			}
			d, ok := RetryAfter(resp)
			if ok != tt.ok || d > tt.want || d < tt.want-tt.slack {
				t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.header, d, ok, tt.want, tt.ok)
			}
		})
	}
	if _, ok := RetryAfter(nil); ok {
		t.Error("RetryAfter(nil) = ok")
	}
}

func TestRetryableStatus(t *testing.T) {
	for status, want := range map[int]bool{
		200: false, 301: false, 400: false, 401: false, 403: false, 404: false, 409: false,
		408: true, 429: true, 500: true, 501: false, 502: true, 503: true, 504: true, 599: true,
	} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			if got := RetryableStatus(status); got != want {
				t.Errorf("RetryableStatus(%d) = %v, want %v", status, got, want)
			}
		})
	}
}

// closeTracker records whether HTTPResult closed the body.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestHTTPResult(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		outcome    Outcome
		detail     string
		wantAfter  time.Duration
		wantBody   string
	}{
		{name: "200", status: 200, body: `{"ok":true}`, outcome: Delivered, detail: "200 OK", wantBody: `{"ok":true}`},
		{name: "204", status: 204, outcome: Delivered, detail: "204 No Content"},
		{name: "299", status: 299, outcome: Delivered},
		{name: "302 is not success", status: 302, body: "moved", outcome: Permanent, detail: "HTTP 302: moved", wantBody: "moved"},
		{name: "404", status: 404, body: " no such hook \n", outcome: Permanent, detail: "HTTP 404: no such hook", wantBody: " no such hook \n"},
		{name: "429 with Retry-After", status: 429, body: "slow down", retryAfter: "30", outcome: Retryable, detail: "HTTP 429: slow down", wantAfter: 30 * time.Second, wantBody: "slow down"},
		{name: "503", status: 503, outcome: Retryable, detail: "HTTP 503: "},
		{name: "long error body is cut", status: 500, body: long, outcome: Retryable, detail: "HTTP 500: " + long[:1024], wantBody: long[:1024]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &closeTracker{Reader: strings.NewReader(tt.body)}
			resp := &http.Response{StatusCode: tt.status, Status: strconv.Itoa(tt.status) + " " + http.StatusText(tt.status), Header: http.Header{}, Body: body}
			if tt.retryAfter != "" {
				resp.Header.Set("Retry-After", tt.retryAfter)
			}
			res, got := HTTPResult(resp, nil)
			if res.Outcome != tt.outcome {
				t.Errorf("outcome = %v, want %v", res.Outcome, tt.outcome)
			}
			if tt.detail != "" && res.Detail != tt.detail {
				t.Errorf("detail = %q, want %q", res.Detail, tt.detail)
			}
			if (res.Outcome == Delivered) != (res.Err == nil) {
				t.Errorf("err = %v with outcome %v", res.Err, res.Outcome)
			}
			if res.Err != nil && res.Err.Error() != res.Detail {
				t.Errorf("err %q differs from detail %q", res.Err, res.Detail)
			}
			if res.RetryAfter != tt.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, tt.wantAfter)
			}
			if string(got) != tt.wantBody {
				t.Errorf("body = %.40q, want %.40q", got, tt.wantBody)
			}
			if !body.closed {
				t.Error("body not closed")
			}
		})
	}
	res, body := HTTPResult(nil, errors.New("dial tcp: connection refused"))
	if res.Outcome != Retryable || res.Detail != "dial tcp: connection refused" || res.Err == nil || body != nil {
		t.Errorf("transport error: %+v %q", res, body)
	}
}
