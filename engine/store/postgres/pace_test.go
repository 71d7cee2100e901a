package postgres_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store/postgres"
	"github.com/livehook/livehook/engine/store/postgres/pgtest"
	"github.com/livehook/livehook/engine/store/storetest"
)

// Two processes sending through one DingTalk robot (20 messages a minute:
// a burst of 5, then one every 4 s) are paced to its rate together: the
// sends both offer at once get a slot each, in one sequence, and a steady
// flow from both never puts more than 20 in a minute.
func TestPaceAcrossProcesses(t *testing.T) {
	const (
		every = 4 * time.Second
		burst = 5
	)
	dsn := pgtest.DSN(t)
	stores := []*postgres.Store{open(t, dsn, postgres.Options{}), open(t, dsn, postgres.Options{})}

	const each = 20
	var mu sync.Mutex
	var waits []time.Duration
	var wg sync.WaitGroup
	for i := range 2 * each {
		wg.Go(func() {
			w, err := stores[i%2].Pace(t.Context(), "robot", base, every, burst)
			if err != nil {
				t.Errorf("Pace: %v", err)
			}
			mu.Lock()
			waits = append(waits, w)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(waits)
	if want := storetest.PacedWaits(2*each, every, burst); !slices.Equal(waits, want) {
		t.Errorf("%d sends offered at once through two processes wait %v, want %v", 2*each, waits, want)
	}

	// Each process offers a message a second for two minutes.
	from := base.Add(time.Hour)
	var slots []time.Time
	for i := range 120 {
		now := from.Add(time.Duration(i) * time.Second)
		for _, s := range stores {
			w, err := s.Pace(t.Context(), "robot", now, every, burst)
			if err != nil {
				t.Fatalf("Pace: %v", err)
			}
			slots = append(slots, now.Add(w))
		}
	}
	if most := storetest.MostInWindow(slots, time.Minute); most > 20 {
		t.Errorf("two processes put %d sends in one minute, want at most 20", most)
	}
}
