// Package httpretry is the quick-retry policy of one outbound HTTP
// attempt, for go-retryablehttp clients: which failures are worth another
// try, how long to wait before it, and when a service's Retry-After is too
// long to wait inside the attempt, so that the attempt ends and hands the
// wait to whoever schedules attempts (the daemon's runner, or livehook for
// a plugin). The daemon's actions (engine/actionapi) and the plugin SDK
// (plugins/sdk/sdkhttp) share it; it imports nothing of livehook's, so a
// plugin that links it links none of the daemon.
package httpretry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

const (
	// MaxWait is the longest Retry-After waited out inside an attempt. A
	// service that asks for longer gets its wait from the scheduler: the
	// attempt ends and frees its concurrency slot instead of sleeping on it.
	MaxWait = 10 * time.Second
	// MaxRetryAfter bounds how long a service may put a delivery off.
	MaxRetryAfter = time.Hour
)

// RetryableStatus reports whether an HTTP status is worth another try.
func RetryableStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests ||
		(status >= 500 && status != http.StatusNotImplemented)
}

// Check is a retryablehttp.CheckRetry: it retries network errors and
// retryable statuses, but not a Retry-After longer than MaxWait, nor one
// that would outlast ctx's deadline (waiting would end the attempt with a
// context error and lose the service's answer). The response is then
// handed back, for the caller to pass its Retry-After on.
func Check(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	if !RetryableStatus(resp.StatusCode) {
		return false, nil
	}
	d, ok := RetryAfter(resp.Header)
	if !ok {
		return true, nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
		return false, nil
	}
	return d <= MaxWait, nil
}

// Backoff is a retryablehttp.Backoff: the service's Retry-After, which
// Check has bounded, else exponential from min with full jitter, up to max.
func Backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := RetryAfter(resp.Header); ok {
			return d
		}
	}
	ceil := max
	if attempt < 63 && min <= max>>attempt { // min<<attempt would pass max or overflow
		ceil = min << attempt
	}
	return min + rand.N(ceil-min+1)
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date), bounded
// by MaxRetryAfter so a service cannot park a delivery for longer.
func RetryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(min(s, int(MaxRetryAfter/time.Second))) * time.Second // no overflow
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	} else {
		return 0, false
	}
	return min(max(d, 0), MaxRetryAfter), true
}
