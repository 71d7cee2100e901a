package actionapi

import (
	"testing"
	"time"
)

func TestHold(t *testing.T) {
	var h Hold
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if _, ok := h.Check(now); !ok {
		t.Fatal("the zero Hold holds")
	}
	h.After(now, Result{Outcome: Retryable, Detail: "HTTP 503: busy"})
	h.After(now, Result{Outcome: Permanent, Detail: "HTTP 404", RetryAfter: time.Minute})
	if _, ok := h.Check(now); !ok {
		t.Fatal("held after a result that asked for no wait")
	}
	h.After(now, Result{Outcome: Retryable, Detail: "errcode 130101: send too fast", RetryAfter: 10 * time.Minute})
	h.After(now.Add(time.Minute), Result{Outcome: Retryable, Detail: "HTTP 429", RetryAfter: time.Minute}) // ends sooner: no change
	r, ok := h.Check(now.Add(4 * time.Minute))
	want := "not sent: the service asked to wait until 2024-05-01T12:10:00Z (errcode 130101: send too fast)"
	if ok || r.Outcome != Retryable || r.RetryAfter != 6*time.Minute || r.Detail != want || r.Err == nil || r.Err.Error() != want {
		t.Errorf("Check = %+v, %v; want retryable after 6m: %s", r, ok, want)
	}
	if _, ok := h.Check(now.Add(10 * time.Minute)); !ok {
		t.Error("still held once the wait is over")
	}
}
