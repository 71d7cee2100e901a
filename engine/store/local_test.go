package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/storetest"
)

func TestLocalConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		dir := t.TempDir()
		return open(t, dir), func() store.Store { return open(t, dir) }
	})
}

// base is the time test events are stamped around.
var base = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string) *store.Local {
	t.Helper()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // Close is idempotent: tests may close earlier
	return s
}

// commitAll takes every waiting event and commits it with the jobs jobs
// gives it.
func commitAll(t *testing.T, s store.Store, jobs func(ev *event.Event) []*store.Job) {
	t.Helper()
	done, cancel := context.WithCancel(t.Context())
	cancel()
	var evals []*store.Evaluation
	for {
		batch, err := s.Unevaluated(done, 100)
		if err != nil {
			break
		}
		for _, a := range batch {
			e := &store.Evaluation{EventID: a.Event.ID, Matched: []string{}}
			if jobs != nil {
				e.Jobs = jobs(a.Event)
			}
			evals = append(evals, e)
		}
	}
	if err := s.Commit(t.Context(), evals); err != nil {
		t.Fatal(err)
	}
}

func job(eventID, rule string, step, replay int, state string) *store.Job {
	return &store.Job{ID: store.JobID(eventID, rule, step, replay), EventID: eventID, Rule: rule, Step: step,
		Action: "a", Type: "log", State: state, Created: base, NextAt: base, Attempts: []store.Attempt{}}
}

func jobIDs(jobs []*store.Job) []string {
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// An event id that extends another's ("evt10" after "evt1") must not
// bleed jobs into it: jobs are found by their event id and a dot.
func TestEventAndJobLookups(t *testing.T) {
	s := open(t, t.TempDir())
	for _, id := range []string{"evt1", "evt10"} {
		if _, err := s.Accept(t.Context(), &store.Incoming{Event: &event.Event{ID: id, Source: "record", ReceivedAt: base}}); err != nil {
			t.Fatal(err)
		}
	}
	commitAll(t, s, func(ev *event.Event) []*store.Job {
		if ev.ID == "evt10" {
			return []*store.Job{job("evt10", "a", 0, 0, store.Pending)}
		}
		return []*store.Job{job("evt1", "a", 0, 0, store.Delivered), job("evt1", "a", 1, 0, store.Pending),
			job("evt1", "b", 0, 0, store.Dead), job("evt1", "a", 0, 1, store.Pending)}
	})
	events := []struct {
		name     string
		id       string
		wantJobs []string // sorted
	}{
		{name: "event with replayed jobs", id: "evt1", wantJobs: []string{"evt1.a.0", "evt1.a.0.r1", "evt1.a.1", "evt1.b.0"}},
		{name: "event whose id extends another", id: "evt10", wantJobs: []string{"evt10.a.0"}},
		{name: "prefix of an event id", id: "evt"},
		{name: "job id prefix", id: "evt1.a"},
	}
	for _, tc := range events {
		t.Run("Event/"+tc.name, func(t *testing.T) {
			d, err := s.Event(t.Context(), tc.id)
			if tc.wantJobs == nil {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Event(%q) = %+v, %v; want ErrNotFound", tc.id, d, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := jobIDs(d.Jobs)
			slices.Sort(got)
			if d.Event.ID != tc.id || !slices.Equal(got, tc.wantJobs) {
				t.Errorf("Event(%q) = %s with jobs %v, want jobs %v", tc.id, d.Event.ID, got, tc.wantJobs)
			}
		})
	}
	for id, want := range map[string]string{"evt1.a.0": store.Delivered, "evt1.a.0.r1": store.Pending,
		"evt1.b.0": store.Dead, "evt10.a.0": store.Pending, "evt1": "", "nope.a.0": ""} {
		j, err := s.Job(t.Context(), id)
		switch {
		case want == "" && !errors.Is(err, store.ErrNotFound):
			t.Errorf("Job(%q) = %+v, %v; want ErrNotFound", id, j, err)
		case want != "" && (err != nil || j.State != want):
			t.Errorf("Job(%q) = %+v, %v; want state %s", id, j, err, want)
		}
	}
}

// A key seen again after its first window ended (a new file with the same
// name a day later) is stored twice; after a reopen the later identity is
// the one in force. An expiry past what the key encodes stays in the
// future.
func TestDedupeKeyRecordedTwiceKeepsTheLaterIdentity(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	accept := func(at time.Time, key string, ttl time.Duration) store.Acceptance {
		t.Helper()
		got, err := s.Accept(t.Context(), &store.Incoming{Event: &event.Event{ID: at.Format(time.RFC3339Nano) + key, ReceivedAt: at},
			DedupeKey: key, DedupeTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		commitAll(t, s, nil)
		return got
	}
	accept(base, "k", time.Hour)
	second := accept(base.Add(2*time.Hour), "k", time.Hour)
	far := accept(base, "far", 250*365*24*time.Hour)
	if second.Duplicate || far.Duplicate {
		t.Fatalf("accepts: %+v %+v, want both new", second, far)
	}
	s.Close()
	s = open(t, dir)
	if got := accept(base.Add(150*time.Minute), "k", time.Hour); !got.Duplicate || got.ID != second.ID {
		t.Errorf("retry after reopen: %+v, want a duplicate of the later %s", got, second.ID)
	}
	if got := accept(base.Add(100*365*24*time.Hour), "far", time.Hour); !got.Duplicate || got.ID != far.ID {
		t.Errorf("retry a century later: %+v, want a duplicate of %s (an expiry after 2262 stays in the future)", got, far.ID)
	}
}

func TestSizeGrowsWithWrites(t *testing.T) {
	s := open(t, t.TempDir())
	size := func() int64 {
		st, err := s.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return st.Bytes
	}
	before := size()
	if before <= 0 {
		t.Fatalf("size of a new store = %d, want > 0", before)
	}
	for i := range 50 {
		ev := &event.Event{ID: base.Add(time.Duration(i)).Format(time.RFC3339Nano), ReceivedAt: base,
			Payload: map[string]any{"note": strings.Repeat("x", 1000)}}
		if _, err := s.Accept(t.Context(), &store.Incoming{Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	afterAccept := size()
	if afterAccept <= before {
		t.Errorf("size after accepting 50 KB = %d, want > %d", afterAccept, before)
	}
	commitAll(t, s, nil)
	if after := size(); after < afterAccept {
		t.Errorf("size after committing = %d, want >= %d", after, afterAccept)
	}
}

func TestOpenRefusesADirectoryInUse(t *testing.T) {
	tests := []struct {
		name    string
		hold    func(t *testing.T, dir string) (release func())
		wantErr string
	}{
		{
			name: "another store",
			hold: func(t *testing.T, dir string) func() {
				s := open(t, dir)
				return func() { s.Close() }
			},
			wantErr: "in use by another process",
		},
		{
			name: "only the database held",
			hold: func(t *testing.T, dir string) func() {
				db, err := bolt.Open(filepath.Join(dir, "livehook.db"), 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				return func() { db.Close() }
			},
			wantErr: "livehook.db: timeout",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			release := tc.hold(t, dir)
			done := make(chan error, 1)
			go func() {
				s, err := store.Open(dir, store.Options{})
				if err == nil {
					s.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("second Open: %v; want an error naming %s and saying %q", err, dir, tc.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("second Open hung")
			}
			// The failed Open must not keep a lock of its own.
			release()
			s, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatalf("Open after the holder closed: %v", err)
			}
			s.Close()
		})
	}
}
