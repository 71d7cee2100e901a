package actionapi

import (
	"fmt"
	"sync"
	"time"
)

// Hold remembers that an instance's service asked it to wait, for services
// whose limit covers every delivery of the instance (a Slack webhook's 429,
// a DingTalk robot's "send too fast"). An attempt that is refused ends with
// the wait as its RetryAfter, and its slot goes to the next delivery; Hold
// keeps that next one from being sent and refused too, by ending it at once
// with the rest of the wait. The zero Hold holds nothing.
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
