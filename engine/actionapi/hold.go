package actionapi

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Hold remembers that an instance's service asked it to wait, for services
// whose limit covers every delivery of the instance (a Slack webhook's 429,
// a DingTalk robot's "send too fast"). An attempt that is refused ends with
// the wait as its RetryAfter, and its slot goes to the next delivery; Hold
// keeps that next one from being sent and refused too, by ending it at once
// with the rest of the wait. The zero Hold holds nothing. Send is the whole
// sequence, with the pacing such services also need.
type Hold struct {
	mu     sync.Mutex
	until  time.Time
	reason string
}

// After records r, a finished attempt: a retryable one that asks for a
// wait holds further sends until now+r.RetryAfter, unless the hold lasts
// longer already.
func (h *Hold) After(now time.Time, r Result) {
	if r.Outcome != Retryable || r.RetryAfter <= 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if until := now.Add(r.RetryAfter); until.After(h.until) {
		h.until, h.reason = until, r.Detail
	}
}

// Check reports whether a delivery may be sent at now. If not, the result
// says so, with the rest of the wait as its RetryAfter.
func (h *Hold) Check(now time.Time) (Result, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	left := h.until.Sub(now)
	if left <= 0 {
		return Result{}, true
	}
	r := Failed(Retryable, fmt.Errorf("not sent: the service asked to wait until %s (%s)",
		h.until.UTC().Format(time.RFC3339), h.reason))
	r.RetryAfter = left
	return r, false
}

// Send makes one delivery of the instance: unless the service asked it to
// wait, it waits its turn with pace (a rate limiter's Wait: only the
// deliveries in progress queue there), checks the hold again, since the
// service may have refused another delivery meanwhile, then sends and
// records the result.
func (h *Hold) Send(ctx context.Context, now func() time.Time, pace func(context.Context) error, send func() Result) Result {
	if r, ok := h.Check(now()); !ok {
		return r
	}
	if err := pace(ctx); err != nil {
		return Failed(Retryable, fmt.Errorf("wait for the rate limit: %w", err))
	}
	if r, ok := h.Check(now()); !ok {
		return r
	}
	r := send()
	h.After(now(), r)
	return r
}
