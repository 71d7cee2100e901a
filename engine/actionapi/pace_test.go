package actionapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/livehook/livehook/engine/store"
)

const webhook = "https://hooks.slack.com/services/T0001/B0002/tokentokentokentoken"

// sendTimes runs Wait of each pacing once per entry of pacings, all at
// once, on synctest's clock, and returns how long after the start each
// was let through, sorted.
func sendTimes(t *testing.T, pacings ...*Pacing) []time.Duration {
	t.Helper()
	start := time.Now()
	var mu sync.Mutex
	var got []time.Duration
	var wg sync.WaitGroup
	for _, p := range pacings {
		wg.Go(func() {
			if err := p.Wait(t.Context()); err != nil {
				t.Errorf("Wait: %v", err)
			}
			mu.Lock()
			got = append(got, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(got)
	return got
}

// Two replicas sending through one Slack webhook (about one message a
// second, bursts of 3), each with its own instance, share its rate when
// they share the store.
func TestPacingSharedThroughTheStore(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	synctest.Test(t, func(t *testing.T) {
		replica := func() *Pacing {
			return Deps{Pacer: st}.WithDefaults().Pacing("alerts", "slack", webhook, time.Second, 3)
		}
		a, b := replica(), replica()
		got := sendTimes(t, a, b, a, b, a, b, a, b)
		want := []time.Duration{0, 0, 0, 1 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second}
		if !slices.Equal(got, want) {
			t.Errorf("8 messages through two replicas sent after %v, want %v: one webhook, one rate", got, want)
		}
	})
}

// A store that fails does not fail the delivery: the process paces alone,
// as it did without a store, says so once without the webhook's token,
// and shares the pace again when the store answers.
func TestPacingAloneWhileTheStoreFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		p := &failingPacer{err: errors.New("connection refused")}
		pacing := Deps{Pacer: p, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}.WithDefaults().
			Pacing("alerts", "slack", webhook, time.Second, 1)
		got := sendTimes(t, pacing, pacing, pacing)
		if want := []time.Duration{0, time.Second, 2 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("with the store down, 3 messages sent after %v, want %v: paced in the process", got, want)
		}
		if n := strings.Count(logs.String(), `"level":"WARN"`); n != 1 || !strings.Contains(logs.String(), `"action":"alerts"`) ||
			!strings.Contains(logs.String(), "connection refused") {
			t.Errorf("log while the store fails, want one warning naming the action and the error:\n%s", logs.String())
		}
		p.mu.Lock()
		p.err = nil
		p.mu.Unlock()
		if err := pacing.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "shared through the store again") {
			t.Errorf("log once the store answers, want it to say the pace is shared again:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), "tokentoken") {
			t.Errorf("the log shows the webhook's token:\n%s", logs.String())
		}
	})
}

type failingPacer struct {
	mu  sync.Mutex
	err error
}

func (f *failingPacer) Pace(context.Context, string, time.Time, time.Duration, int) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return 0, f.err
}

// The store knows an account by a hash: one per webhook and service,
// without the token.
func TestPaceKey(t *testing.T) {
	key := PaceKey("slack", webhook)
	if strings.Contains(key, "tokentoken") || strings.Contains(key, "T0001") || strings.Contains(key, "hooks.slack.com") {
		t.Errorf("key %q shows the webhook URL", key)
	}
	if PaceKey("slack", webhook) != key || PaceKey("slack", webhook+"x") == key || PaceKey("dingtalk", webhook) == key {
		t.Errorf("keys are not one per webhook and service")
	}
}

// A slot beyond the attempt's deadline ends the wait at once.
func TestPacingPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &slowPacer{wait: time.Minute}
		pacing := Deps{Pacer: st}.WithDefaults().Pacing("alerts", "slack", webhook, time.Second, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := pacing.Wait(ctx); err == nil || !strings.Contains(err.Error(), "deadline") || time.Since(start) != 0 {
			t.Errorf("Wait for a slot a minute away within 10s = %v after %v, want a deadline error at once", err, time.Since(start))
		}
	})
}

type slowPacer struct{ wait time.Duration }

func (s *slowPacer) Pace(context.Context, string, time.Time, time.Duration, int) (time.Duration, error) {
	return s.wait, nil
}
