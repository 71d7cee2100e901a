package sdkhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehook/livehook/plugins/protocol"
	"github.com/livehook/livehook/plugins/sdk"
	"github.com/livehook/livehook/plugins/sdk/sdkhttp"
)

func TestPostJSON(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n == 1 { // one 5xx is retried inside PostJSON
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json; charset=utf-8" || json.Unmarshal(body, &m) != nil || m["a"] != "b" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Test", "yes")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	c := sdkhttp.Client()
	c.RetryWaitMin, c.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	rep, err := sdkhttp.PostJSON(context.Background(), c, srv.URL+"/hook?token=t0k3n", map[string]string{"a": "b"})
	if err != nil || rep.Status != 200 || string(rep.Body) != `{"ok":true}` || rep.Header.Get("X-Test") != "yes" || calls.Load() != 2 {
		t.Errorf("reply %+v, %v after %d calls; want 200 {\"ok\":true} after 2", rep, err, calls.Load())
	}
}

// A service that asks for a long wait gets it from livehook: the plugin
// answers at once, retryable with retry_after, instead of sleeping until
// it is killed. Had the client slept, the handler's context (9s of the
// 10s timeout) would have ended first, and the answer would be a context
// error without retry_after.
func TestALongRetryAfterGoesBackAsRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls.Add(1)
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(status)
				_, _ = w.Write([]byte("slow down"))
			}))
			defer srv.Close()
			in := `{"protocol":1,"plugin":"p","delivery_id":"d1","timeout_ms":10000,"settings":{"url":"` + srv.URL + `"}}`
			var out bytes.Buffer
			err := sdk.Run(context.Background(), strings.NewReader(in), &out, func(ctx context.Context, req *sdk.Request) sdk.Response {
				var s struct{ URL string }
				if err := req.DecodeSettings(&s); err != nil {
					return sdk.Permanent("settings: %v", err)
				}
				rep, err := sdkhttp.PostJSON(ctx, sdkhttp.Client(), s.URL, map[string]string{"text": "hi"})
				if err != nil {
					return sdk.Retryable("%v", err)
				}
				if ctx.Err() != nil {
					return sdk.Permanent("PostJSON returned after the run's deadline")
				}
				return rep.Unexpected("Svc")
			})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := protocol.DecodeResponse(out.Bytes())
			want := fmt.Sprintf("HTTP %d: slow down", status)
			if err != nil || resp.Outcome != protocol.Retryable || resp.Detail != want || resp.RetryAfter != 120 {
				t.Errorf("answer %s (%v), want retryable %q with retry_after 120", out.String(), err, want)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("the service was called %d times, want once", n)
			}
		})
	}
}

// A short Retry-After is waited out inside the run, for 429 and 5xx alike.
func TestAShortRetryAfterIsWaitedOut(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if calls.Add(1) == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(status)
					return
				}
				_, _ = w.Write([]byte(`{"ok":true}`))
			}))
			defer srv.Close()
			c := sdkhttp.Client()
			c.RetryWaitMin, c.RetryWaitMax = time.Millisecond, 5*time.Millisecond // only Retry-After can make it wait
			start := time.Now()
			rep, err := sdkhttp.PostJSON(context.Background(), c, srv.URL, map[string]string{})
			if err != nil || rep.Status != 200 || calls.Load() != 2 {
				t.Fatalf("reply %+v, %v after %d calls; want 200 after 2", rep, err, calls.Load())
			}
			if waited := time.Since(start); waited < time.Second {
				t.Errorf("retried after %v, want the 1s the service asked for", waited)
			}
		})
	}
}

// A wait that fits the 10s bound but not the time the run has left is
// not waited either: the reply goes back while there is time to answer.
func TestARetryAfterPastTheDeadlineGoesBack(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rep, err := sdkhttp.PostJSON(ctx, sdkhttp.Client(), srv.URL, map[string]string{})
	if err != nil || rep.Status != 429 || calls.Load() != 1 {
		t.Fatalf("reply %+v, %v after %d calls; want one 429", rep, err, calls.Load())
	}
	if ctx.Err() != nil {
		t.Error("PostJSON returned only when the context ended")
	}
	if r := rep.Unexpected("X"); r.Outcome != protocol.Retryable || r.RetryAfter != 5*time.Second {
		t.Errorf("classified as %+v, want retryable after 5s", r)
	}
}

func TestPostJSONErrorsHideTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hook/s3cr3t-t0k3n"
	srv.Close()
	c := sdkhttp.Client()
	c.RetryWaitMin, c.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	_, err := sdkhttp.PostJSON(context.Background(), c, url, map[string]string{})
	if err == nil || !strings.HasPrefix(err.Error(), "POST: ") || strings.Contains(err.Error(), "s3cr3t-t0k3n") {
		t.Errorf("error %v, want a POST error without the URL", err)
	}
}

func TestUnexpected(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		header      string
		body        string
		wantOutcome protocol.Outcome
		wantDetail  string
		wantAfter   time.Duration
		slack       time.Duration // an HTTP date only says the second
	}{
		{name: "a proxy's page", status: 200, body: "<html>", wantOutcome: protocol.Retryable, wantDetail: `HTTP 200 with a reply that is not Svc's JSON: "<html>"`},
		{name: "request timeout", status: 408, wantOutcome: protocol.Retryable, wantDetail: "HTTP 408: "},
		{name: "rate limited with a date", status: 429, header: time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), wantOutcome: protocol.Retryable, wantDetail: "HTTP 429: ", wantAfter: 59 * time.Minute, slack: time.Minute},
		{name: "a wait beyond an hour is an hour", status: 429, header: "86400", wantOutcome: protocol.Retryable, wantDetail: "HTTP 429: ", wantAfter: time.Hour},
		{name: "server error", status: 503, body: "down", header: "5", wantOutcome: protocol.Retryable, wantDetail: "HTTP 503: down", wantAfter: 5 * time.Second},
		{name: "not implemented", status: 501, wantOutcome: protocol.Permanent, wantDetail: "HTTP 501: "},
		{name: "not found", status: 404, body: "  no such hook\n", wantOutcome: protocol.Permanent, wantDetail: "HTTP 404: no such hook"},
		{name: "long body is cut", status: 400, body: strings.Repeat("é", 200), wantOutcome: protocol.Permanent, wantDetail: "HTTP 400: " + strings.Repeat("é", 98) + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set("Retry-After", tc.header)
			}
			r := sdkhttp.Reply{Status: tc.status, Header: h, Body: []byte(tc.body)}.Unexpected("Svc")
			if r.Outcome != tc.wantOutcome || r.Detail != tc.wantDetail || r.RetryAfter < tc.wantAfter || r.RetryAfter > tc.wantAfter+tc.slack {
				t.Errorf("got %+v, want %s %q after %s", r, tc.wantOutcome, tc.wantDetail, tc.wantAfter)
			}
		})
	}
}
