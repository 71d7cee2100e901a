package actionapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHoldSend(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var paced, sent int
	pace := func(context.Context) error { paced++; return nil }
	refuse := func() Result { sent++; return Result{Outcome: Retryable, Detail: "HTTP 429", RetryAfter: time.Minute} }
	deliver := func() Result { sent++; return Result{Outcome: Delivered} }

	var h Hold
	if r := h.Send(context.Background(), clock, pace, refuse); r.Outcome != Retryable || r.RetryAfter != time.Minute || paced != 1 || sent != 1 {
		t.Fatalf("first send: %+v after %d paces and %d sends; want the refusal after one of each", r, paced, sent)
	}
	// The refusal holds the next delivery: it is neither paced nor sent.
	if r := h.Send(context.Background(), clock, pace, deliver); r.Outcome != Retryable || r.RetryAfter != time.Minute || paced != 1 || sent != 1 {
		t.Errorf("held send: %+v after %d paces and %d sends; want retryable after 1m with nothing done", r, paced, sent)
	}
	now = now.Add(time.Minute)
	if r := h.Send(context.Background(), clock, pace, deliver); r.Outcome != Delivered || paced != 2 || sent != 2 {
		t.Errorf("send after the wait: %+v after %d paces and %d sends; want delivered", r, paced, sent)
	}
}

// A delivery refused while another waited its turn holds that one too.
func TestHoldSendChecksAgainAfterPacing(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var h Hold
	refusedMeanwhile := func(context.Context) error {
		h.After(now, Result{Outcome: Retryable, Detail: "errcode 130101: send too fast", RetryAfter: 10 * time.Minute})
		return nil
	}
	sent := false
	r := h.Send(context.Background(), func() time.Time { return now }, refusedMeanwhile, func() Result { sent = true; return Result{Outcome: Delivered} })
	if sent || r.Outcome != Retryable || r.RetryAfter != 10*time.Minute {
		t.Errorf("Send = %+v, sent %v; want it held for 10m, not sent", r, sent)
	}
}

func TestHoldSendGivesUpWaitingWithTheContext(t *testing.T) {
	var h Hold
	sent := false
	r := h.Send(context.Background(), time.Now, func(context.Context) error { return context.Canceled },
		func() Result { sent = true; return Result{Outcome: Delivered} })
	if sent || r.Outcome != Retryable || !errors.Is(r.Err, context.Canceled) || !strings.HasPrefix(r.Detail, "wait for the rate limit: ") {
		t.Errorf("Send = %+v, sent %v; want retryable, waiting for the rate limit, not sent", r, sent)
	}
}
