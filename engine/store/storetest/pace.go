package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
)

// DingTalk's pace: 20 messages in any minute, as a burst of 5 and one
// every 4 s.
const (
	paceEvery = 4 * time.Second
	paceBurst = 5
)

// MostInWindow is the most of slots that fall in any window of length w
// (both ends included): what a service that counts messages per minute
// would see at its worst moment.
func MostInWindow(slots []time.Time, w time.Duration) int {
	sorted := slices.Clone(slots)
	slices.SortFunc(sorted, time.Time.Compare)
	most := 0
	for i, from := range sorted {
		n := 0
		for _, s := range sorted[i:] {
			if s.Sub(from) > w {
				break
			}
			n++
		}
		most = max(most, n)
	}
	return most
}

// PacedWaits are the waits n reservations made at one moment on a fresh
// key get: the burst at once, the rest one interval apart.
func PacedWaits(n int, every time.Duration, burst int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = max(time.Duration(i-burst+1), 0) * every
	}
	return out
}

func pacer(t *testing.T, open Opener) store.Pacer {
	s, _ := open(t)
	p, ok := s.(store.Pacer)
	if !ok {
		t.Skipf("%T does not pace", s)
	}
	return p
}

func pace(t *testing.T, p store.Pacer, key string, now time.Time) time.Duration {
	t.Helper()
	wait, err := p.Pace(ctx(t), key, now, paceEvery, paceBurst)
	if err != nil {
		t.Fatalf("Pace(%s, %v): %v", key, now, err)
	}
	return wait
}

// Reservations beyond a burst wait their turn, one interval apart; a key's
// slots are its own; an idle key has its burst again.
func testPace(t *testing.T, open Opener) {
	p := pacer(t, open)
	var waits []time.Duration
	for range 30 {
		waits = append(waits, pace(t, p, "robot-a", base))
	}
	if want := PacedWaits(30, paceEvery, paceBurst); !slices.Equal(waits, want) {
		t.Errorf("30 sends at once wait %v, want %v", waits, want)
	}
	if w := pace(t, p, "robot-b", base); w != 0 {
		t.Errorf("another robot's first send waits %v, want 0: its slots are its own", w)
	}
	// 30 slots reach to base+116s; 2 minutes later the robot is idle.
	later := base.Add(4 * time.Minute)
	waits = nil
	for range paceBurst + 1 {
		waits = append(waits, pace(t, p, "robot-a", later))
	}
	if want := PacedWaits(paceBurst+1, paceEvery, paceBurst); !slices.Equal(waits, want) {
		t.Errorf("after an idle spell, sends wait %v, want %v: a fresh burst", waits, want)
	}

	// One message a second offered for two minutes: no minute holds more
	// than DingTalk's 20, and none is lost (each got a slot of its own).
	from := base.Add(time.Hour)
	var slots []time.Time
	for i := range 120 {
		now := from.Add(time.Duration(i) * time.Second)
		slots = append(slots, now.Add(pace(t, p, "robot-c", now)))
	}
	if most := MostInWindow(slots, time.Minute); most > 20 {
		t.Errorf("%d sends in one minute, want at most 20", most)
	}
	if distinct := len(slices.Compact(slices.Clone(slots))); distinct != len(slots) {
		t.Errorf("%d sends share %d slots, want a slot each", len(slots), distinct)
	}

	for _, bad := range []struct {
		key   string
		every time.Duration
		burst int
	}{{"", time.Second, 1}, {"k", 0, 1}, {"k", time.Second, 0}} {
		if _, err := p.Pace(ctx(t), bad.key, base, bad.every, bad.burst); err == nil {
			t.Errorf("Pace(%q, every %v, burst %d) = nil error, want one", bad.key, bad.every, bad.burst)
		}
	}
}

// Reservations made at once never take the same slot.
func testPaceConcurrent(t *testing.T, open Opener) {
	p := pacer(t, open)
	const n = 32
	waits := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w, err := p.Pace(ctx(t), "robot", base, paceEvery, paceBurst)
			if err != nil {
				t.Errorf("Pace: %v", err)
			}
			waits[i] = w
		})
	}
	wg.Wait()
	slices.Sort(waits)
	if want := PacedWaits(n, paceEvery, paceBurst); !slices.Equal(waits, want) {
		t.Errorf("%d sends at once wait %v, want %v", n, waits, want)
	}
}
