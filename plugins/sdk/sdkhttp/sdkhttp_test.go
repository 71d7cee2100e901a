package sdkhttp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehook/livehook/plugins/protocol"
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

func TestPostJSONDoesNotRetry429(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	rep, err := sdkhttp.PostJSON(context.Background(), sdkhttp.Client(), srv.URL, map[string]string{})
	if err != nil || rep.Status != 429 || calls.Load() != 1 {
		t.Fatalf("reply %+v, %v after %d calls; want one 429", rep, err, calls.Load())
	}
	if r := rep.Unexpected("X"); r.Outcome != protocol.Retryable || r.RetryAfter != 30*time.Second {
		t.Errorf("classified as %+v, want retryable after 30s", r)
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
