package actionapi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/livehook/livehook/internal/httpretry"
)

// Defaults for outbound HTTP, suited to chat alerts and webhooks.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultAttempts   = 3
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// maxErrorBody is how much of an error reply is kept as its detail.
	maxErrorBody = 1 << 10
)

// HTTPOptions are the outbound settings every HTTP action instance accepts
// under `timeout:` and `retry:`.
type HTTPOptions struct {
	Timeout time.Duration `yaml:"timeout"` // per attempt; default 10s
	Retry   RetryPolicy   `yaml:"retry"`
}

// RetryPolicy bounds the retries of one delivery.
type RetryPolicy struct {
	Attempts   int           `yaml:"attempts"`    // tries in all, including the first; default 3
	MinBackoff time.Duration `yaml:"min_backoff"` // first wait; default 500ms
	MaxBackoff time.Duration `yaml:"max_backoff"` // longest wait; default 30s
}

func (o HTTPOptions) withDefaults() HTTPOptions {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retry.Attempts <= 0 {
		o.Retry.Attempts = DefaultAttempts
	}
	if o.Retry.MinBackoff <= 0 {
		o.Retry.MinBackoff = DefaultMinBackoff
	}
	if o.Retry.MaxBackoff <= 0 {
		o.Retry.MaxBackoff = DefaultMaxBackoff
	}
	if o.Retry.MaxBackoff < o.Retry.MinBackoff {
		o.Retry.MaxBackoff = o.Retry.MinBackoff
	}
	return o
}

// HTTP is the daemon's outbound HTTP: one connection pool shared by every
// action, handing out clients with per-instance timeout and retry policy.
type HTTP struct {
	transport http.RoundTripper
}

// NewHTTP builds the shared pool. A nil transport gets a pooled one sized
// for many concurrent deliveries, so connections are reused, not churned.
func NewHTTP(transport http.RoundTripper) *HTTP {
	if transport == nil {
		t := cleanhttp.DefaultPooledTransport()
		// Idle connections are kept per host for several webhook instances
		// delivering at their default 64 at once (two endpoints of one
		// service share a host), and with no cap across hosts: the hosts
		// are the rules' own, and an idle connection closes after
		// IdleConnTimeout.
		t.MaxIdleConnsPerHost = idlePerHost
		t.MaxIdleConns = 0
		transport = t
	}
	return &HTTP{transport: sharedTransport{transport}}
}

// idlePerHost is how many idle connections the shared pool keeps per host.
const idlePerHost = 256

// sharedTransport hides the pool's CloseIdleConnections: retryablehttp
// calls it after a failed delivery, which would drop every other action's
// idle connections too.
type sharedTransport struct{ http.RoundTripper }

// Client returns a retrying client for one action instance. It retries
// network errors, 408, 429 and 5xx (but 501) with exponential backoff and
// full jitter, waits out a Retry-After of up to 10s, stops at a longer one,
// and hands the last response back rather than an opaque "giving up"
// error, so actions can classify it (HTTPResult passes the Retry-After on
// as the result's RetryAfter).
func (h *HTTP) Client(o HTTPOptions) *retryablehttp.Client {
	o = o.withDefaults()
	return &retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: h.transport, Timeout: o.Timeout},
		RetryWaitMin: o.Retry.MinBackoff,
		RetryWaitMax: o.Retry.MaxBackoff,
		RetryMax:     o.Retry.Attempts - 1,
		CheckRetry:   checkRetry,
		Backoff:      backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
}

// The quick-retry policy is httpretry's, which the plugin SDK shares: a
// Retry-After over httpretry.MaxWait (10s) ends the attempt, and the
// runner schedules the next one then.
var (
	checkRetry retryablehttp.CheckRetry = httpretry.Check
	backoff    retryablehttp.Backoff    = httpretry.Backoff
)

// RetryableStatus reports whether an HTTP status is worth another try:
// 408, 429 and 5xx but 501.
func RetryableStatus(status int) bool { return httpretry.RetryableStatus(status) }

// RetryAfter reads a response's Retry-After header (seconds or an HTTP
// date), bounded at an hour so a service cannot park a delivery for longer.
func RetryAfter(resp *http.Response) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	return httpretry.RetryAfter(resp.Header)
}

// HTTPResult classifies a finished exchange for actions whose success is
// any 2xx: transport errors and retryable statuses are Retryable, other
// statuses Permanent, each with the service's reply as detail. It reads
// and closes resp.Body.
func HTTPResult(resp *http.Response, err error) (Result, []byte) {
	if err != nil {
		return Failed(Retryable, err), nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Result{Outcome: Delivered, Detail: resp.Status}, body
	}
	detail := fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	r := Result{Outcome: Permanent, Detail: detail, Err: fmt.Errorf("%s", detail)}
	if RetryableStatus(resp.StatusCode) {
		r.Outcome = Retryable
		r.RetryAfter, _ = RetryAfter(resp)
	}
	return r, body
}
