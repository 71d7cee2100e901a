package httpretry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func reply(status int, retryAfter string) *http.Response {
	resp := &http.Response{StatusCode: status, Header: http.Header{}}
	if retryAfter != "" {
		resp.Header.Set("Retry-After", retryAfter)
	}
	return resp
}

func TestCheck(t *testing.T) {
	soon, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done, stop := context.WithCancel(context.Background())
	stop()
	tests := []struct {
		name    string
		ctx     context.Context
		resp    *http.Response
		err     error
		want    bool
		wantErr error
	}{
		{name: "a retryable status", ctx: context.Background(), resp: reply(503, ""), want: true},
		{name: "a status that is not", ctx: context.Background(), resp: reply(404, ""), want: false},
		{name: "a network error", ctx: context.Background(), err: errors.New("connection reset"), want: true},
		{name: "a wait up to MaxWait", ctx: context.Background(), resp: reply(429, "10"), want: true},
		{name: "a longer wait is the scheduler's", ctx: context.Background(), resp: reply(429, "11"), want: false},
		{name: "an unreadable Retry-After is no wait", ctx: context.Background(), resp: reply(429, "soon"), want: true},
		{name: "a wait that fits before the deadline", ctx: soon, resp: reply(503, "1"), want: true},
		{name: "a wait past the deadline goes back", ctx: soon, resp: reply(503, "6"), want: false},
		{name: "a context that ended", ctx: done, resp: reply(503, ""), want: false, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Check(tt.ctx, tt.resp, tt.err)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("Check = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestBackoffTakesTheServicesWait(t *testing.T) {
	if d := Backoff(time.Millisecond, 2*time.Millisecond, 0, reply(429, "7")); d != 7*time.Second {
		t.Errorf("backoff = %v, want the 7s asked for", d)
	}
	for attempt := range 10 {
		if d := Backoff(time.Millisecond, 4*time.Millisecond, attempt, reply(503, "")); d < time.Millisecond || d > 4*time.Millisecond {
			t.Fatalf("attempt %d: backoff %v outside [1ms, 4ms]", attempt, d)
		}
	}
}

func TestRetryAfterIsBounded(t *testing.T) {
	for _, v := range []string{"3601", "9223372036", "99999999999999", time.Now().Add(48 * time.Hour).UTC().Format(http.TimeFormat)} {
		if d, ok := RetryAfter(reply(429, v).Header); !ok || d != MaxRetryAfter {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v", v, d, ok, MaxRetryAfter)
		}
	}
	if d, ok := RetryAfter(reply(429, "-5").Header); !ok || d != 0 {
		t.Errorf("RetryAfter(-5) = %v, %v; want 0, true", d, ok)
	}
}
