package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/event"
)

var base = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func openLocal(t testing.TB, dir string) *Local {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func eventNo(i int) *event.Event {
	return &event.Event{ID: fmt.Sprintf("01J0000000000000000000%04d", i), Source: event.SourceRecord,
		Kind: event.KindStatus, Stream: fmt.Sprint("room", i), ReceivedAt: base}
}

func taken(t testing.TB, s *Local) []*Accepted {
	t.Helper()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	batch, _ := s.Unevaluated(done, 100)
	return batch
}

func applied(t *testing.T, s *Local) uint64 {
	t.Helper()
	var n uint64
	if err := s.db.View(func(tx *bolt.Tx) error { n = readApplied(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// Events committed out of journal order: the applied position stops below
// the first uncommitted one, and a reopen hands out exactly that one again.
func TestCommitOutOfOrderKeepsTheWatermarkBelowAGap(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	for i := 1; i <= 3; i++ {
		if _, err := s.Accept(t.Context(), &Incoming{Event: eventNo(i)}); err != nil {
			t.Fatal(err)
		}
	}
	taken(t, s)
	// The second and third are committed; the first is still being
	// evaluated when the process dies.
	if err := s.Commit(t.Context(), []*Evaluation{{EventID: eventNo(3).ID}, {EventID: eventNo(2).ID}}); err != nil {
		t.Fatal(err)
	}
	if got := applied(t, s); got != 0 {
		t.Errorf("applied position %d, want 0: seq 1 is not committed", got)
	}
	for _, when := range []string{"reopened", "reopened again"} {
		s.Close()
		s = openLocal(t, dir)
		got := taken(t, s)
		if len(got) != 1 || got[0].Event.ID != eventNo(1).ID {
			t.Fatalf("%s: to evaluate %d events (%v), want only the first", when, len(got), got)
		}
		if when == "reopened again" {
			if err := s.Commit(t.Context(), []*Evaluation{{EventID: eventNo(1).ID}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := applied(t, s); got != 3 {
		t.Errorf("applied position %d after the gap was committed, want 3: the events applied ahead count", got)
	}
	s.Close()
	s = openLocal(t, dir)
	if got := taken(t, s); len(got) != 0 {
		t.Errorf("after everything was committed, a reopen handed out %d events", len(got))
	}
}

// failingLog is a journal whose appends fail while fail is set, as a full
// disk makes them; a failing append tells entered and waits for hold.
type failingLog struct {
	appendLog
	mu      sync.Mutex
	fail    bool
	appends int
	entered chan struct{}
	hold    chan struct{}
}

func (l *failingLog) Append(ctx context.Context, rec []byte) (uint64, error) {
	l.mu.Lock()
	l.appends++
	fail := l.fail
	l.mu.Unlock()
	if !fail {
		return l.appendLog.Append(ctx, rec)
	}
	l.entered <- struct{}{}
	<-l.hold
	return 0, fmt.Errorf("journal: write: %w", syscall.ENOSPC)
}

// A retry that arrives while the first copy's write fails waits for it,
// and is then written itself: never told 200 for an event not on disk.
func TestRetryDuringAFailedWriteIsWrittenItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := openLocal(t, t.TempDir())
		log := &failingLog{appendLog: s.journal, fail: true, entered: make(chan struct{}), hold: make(chan struct{})}
		s.journal = log
		in := func(i int) *Incoming {
			return &Incoming{Event: eventNo(i), DedupeKey: "same", DedupeTTL: time.Hour}
		}
		firstErr := make(chan error)
		go func() { _, err := s.Accept(context.Background(), in(1)); firstErr <- err }()
		<-log.entered
		retry := make(chan Acceptance)
		go func() {
			got, err := s.Accept(context.Background(), in(2))
			if err != nil {
				t.Error(err)
			}
			retry <- got
		}()
		synctest.Wait() // the retry waits on the first copy's claim
		log.mu.Lock()
		log.fail = false
		log.mu.Unlock()
		close(log.hold)
		if err := <-firstErr; err == nil {
			t.Fatal("the failed write was accepted")
		}
		if got := <-retry; got.Duplicate || got.ID != eventNo(2).ID {
			t.Errorf("the retry: %+v, want it accepted as new", got)
		}
		if log.appends != 2 {
			t.Errorf("%d writes, want 2", log.appends)
		}
		if got := taken(t, s); len(got) != 1 || got[0].Event.ID != eventNo(2).ID {
			t.Errorf("to evaluate: %v, want only the retry", got)
		}
	})
}

// A record stored with its journal bytes is one JSON object whose keys
// each appear once, and reads back as the record.
func TestCommitSplicesTheJournalRecord(t *testing.T) {
	s := openLocal(t, t.TempDir())
	ev, err := event.DecodeRecord([]byte(`{"domain":"d","app":"live","stream":"s","uri":"live/s/1.flv","duration":61.5}`))
	if err != nil {
		t.Fatal(err)
	}
	ev.ID, ev.ReceivedAt = "01J00000000000000000000000", time.Unix(1714564803, 0).UTC()
	key := "file:d/live/s/live/s/1.flv"
	if _, err := s.Accept(t.Context(), &Incoming{Event: ev, DedupeKey: key, DedupeTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	taken(t, s)
	if err := s.Commit(t.Context(), []*Evaluation{{EventID: ev.ID, Matched: []string{"r"}, Errors: []string{"e"}}}); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		stored = slices.Clone(tx.Bucket(bucketEvents).Get([]byte(ev.ID)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(stored))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("stored %s: not an object (%v, %v)", stored, tok, err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("stored %s: %v", stored, err)
		}
		key := tok.(string)
		if seen[key] {
			t.Errorf("stored %s: key %q twice", stored, key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Event(t.Context(), ev.ID)
	if err != nil || got.Event.ID != ev.ID || got.Event.URI != ev.URI || got.DedupeKey != key ||
		!slices.Equal(got.Matched, []string{"r"}) || !slices.Equal(got.Errors, []string{"e"}) {
		t.Errorf("read back %+v, %v", got, err)
	}
}

// A job record that cannot be read, or an event record whose event cannot
// be, is left out of a claim, with an error naming it; the other due jobs
// are claimed all the same. A claim reads only the event of an event
// record: what else the record holds (its evaluation's outcome) being
// unreadable does not keep the delivery from running.
func TestClaimLeavesOutUnreadableJobs(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	var jobs []*Job
	for i := 1; i <= 5; i++ {
		ev := eventNo(i)
		if _, err := s.Accept(t.Context(), &Incoming{Event: ev}); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, &Job{ID: JobID(ev.ID, "r", 0, 0), EventID: ev.ID, Rule: "r", Action: "a",
			State: Pending, Created: base, NextAt: base, Attempts: []Attempt{}})
	}
	var evals []*Evaluation
	for i, a := range taken(t, s) {
		evals = append(evals, &Evaluation{EventID: a.Event.ID, Jobs: []*Job{jobs[i]}})
	}
	if err := s.Commit(t.Context(), evals); err != nil {
		t.Fatal(err)
	}
	fifth, err := event.AppendJSON(nil, eventNo(5))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		return errors.Join(tx.Bucket(bucketJobs).Put([]byte(jobs[1].ID), []byte("{not json")),
			events.Put([]byte(jobs[3].EventID), []byte(`{"matched":[],"event":"not an event"}`)),
			events.Put([]byte(jobs[4].EventID), append(append([]byte(`{"matched":5,"event":`), fifth...), '}')))
	}); err != nil {
		t.Fatal(err)
	}
	// Opened again: new jobs are claimed from memory the first time, and
	// this is about reading them from the db.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openLocal(t, dir)
	got, _, err := s.ClaimJobs(t.Context(), Claim{Owner: "o", Now: base, Lease: time.Minute, Other: 10})
	for _, name := range []string{jobs[1].ID, jobs[3].EventID} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("claim error %v, want one naming %s", err, name)
		}
	}
	var ids []string
	for _, c := range got {
		ids = append(ids, c.Job.ID)
		if c.Event == nil || c.Event.ID != c.Job.EventID {
			t.Errorf("job %s claimed with event %+v", c.Job.ID, c.Event)
		} else if c.Job.ID == jobs[4].ID && !reflect.DeepEqual(c.Event, eventNo(5)) {
			t.Errorf("job %s claimed with event\n%+v\nwant\n%+v", c.Job.ID, c.Event, eventNo(5))
		}
	}
	if want := []string{jobs[0].ID, jobs[2].ID, jobs[4].ID}; !slices.Equal(ids, want) {
		t.Errorf("claimed %v, want the readable jobs %v", ids, want)
	}
}

// More pending jobs than one window holds are claimed in due order across
// pages, jobs added meanwhile take their place in that order, and a
// reopen reads none of them until they are claimed.
func TestBacklogPagesInByDueTime(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	const n = 2*windowSize + 10
	if _, err := s.Accept(t.Context(), &Incoming{Event: eventNo(1)}); err != nil {
		t.Fatal(err)
	}
	taken(t, s)
	var jobs []*Job
	for i := range n {
		// Due times descending with i, so commit order is not due order.
		at := base.Add(time.Duration(n-i) * time.Second)
		jobs = append(jobs, &Job{ID: JobID(eventNo(1).ID, fmt.Sprintf("r%05d", i), 0, 0), EventID: eventNo(1).ID,
			Action: "a", State: Pending, Created: base, NextAt: at, Attempts: []Attempt{}})
	}
	if err := s.Commit(t.Context(), []*Evaluation{{EventID: eventNo(1).ID, Jobs: jobs}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openLocal(t, dir)
	if st, _ := s.Stats(t.Context()); st.Pending != n {
		t.Fatalf("pending after reopen = %d, want %d", st.Pending, n)
	}
	claimAll := func(now time.Time, limit int) []string {
		got, _, err := s.ClaimJobs(t.Context(), Claim{Owner: "o", Now: now, Lease: time.Hour, Limits: map[string]int{"a": limit}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range got {
			ids = append(ids, c.Job.ID)
			c.Job.State = Delivered
			if err := s.Finish(t.Context(), "o", c.Job); err != nil {
				t.Fatal(err)
			}
		}
		return ids
	}
	far := base.Add(24 * time.Hour)
	first := claimAll(far, windowSize+5) // across the first window's end
	if len(first) != windowSize+5 || first[0] != jobs[n-1].ID || first[1] != jobs[n-2].ID {
		t.Fatalf("first claim: %d jobs starting %v, want %d in due order from %s", len(first), first[:2], windowSize+5, jobs[n-1].ID)
	}
	// A job due before everything left joins the order.
	early := &Job{ID: JobID(eventNo(1).ID, "early", 0, 0), EventID: eventNo(1).ID, Action: "a", State: Pending,
		Created: base, NextAt: base, Attempts: []Attempt{}}
	if _, err := s.ReplayEvent(t.Context(), eventNo(1).ID, func(*event.Event, int) ([]*Job, error) { return []*Job{early}, nil }); err != nil {
		t.Fatal(err)
	}
	rest := claimAll(far, n)
	if len(rest) != n-len(first)+1 || rest[0] != early.ID {
		t.Fatalf("second claim: %d jobs starting %s, want %d starting with the early one", len(rest), rest[0], n-len(first)+1)
	}
	seen := map[string]bool{}
	for _, id := range append(first, rest...) {
		if seen[id] {
			t.Fatalf("job %s claimed twice", id)
		}
		seen[id] = true
	}
	if st, _ := s.Stats(t.Context()); st.Pending != 0 {
		t.Errorf("pending at the end = %d, want 0", st.Pending)
	}
}

// A store whose pending jobs were indexed without due times (before the
// due bucket existed) gets them indexed at open.
func TestOpenIndexesOldPendingJobs(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	j := &Job{ID: "ev1.r.0", EventID: "ev1", Action: "a", State: Pending, Created: base, NextAt: base, Attempts: []Attempt{}}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketJobs), j.ID, j); err != nil {
			return err
		}
		return tx.Bucket(bucketPending).Put([]byte(j.ID), nil)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openLocal(t, dir)
	got, _, err := s.ClaimJobs(t.Context(), Claim{Owner: "o", Now: base, Lease: time.Minute, Other: 1})
	if err != nil || len(got) != 1 || got[0].Job.ID != j.ID {
		t.Fatalf("claim after the upgrade: %v, %v; want %s", got, err, j.ID)
	}
}

// A callback whose dedupe key is longer than bbolt takes a key is
// remembered by its hash: it commits, and its retry is a duplicate, before
// and after a reopen.
func TestLongDedupeKeyCommits(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	key := "file\x00" + strings.Repeat("x", 40<<10)
	in := func(i int) *Incoming { return &Incoming{Event: eventNo(i), DedupeKey: key, DedupeTTL: time.Hour} }
	if _, err := s.Accept(t.Context(), in(1)); err != nil {
		t.Fatal(err)
	}
	taken(t, s)
	if err := s.Commit(t.Context(), []*Evaluation{{EventID: eventNo(1).ID}}); err != nil {
		t.Fatalf("commit of an event with a 40 KiB dedupe key: %v", err)
	}
	for _, when := range []string{"open", "reopened"} {
		if when == "reopened" {
			s.Close()
			s = openLocal(t, dir)
		}
		if got, err := s.Accept(t.Context(), in(2)); err != nil || !got.Duplicate || got.ID != eventNo(1).ID {
			t.Errorf("%s: retry = %+v, %v; want a duplicate of %s", when, got, err, eventNo(1).ID)
		}
	}
}

// A key rewritten with the due time it had (a session's every event) keeps
// one timer item, not one per write.
func TestTimerHeapGrowsWithKeysNotWrites(t *testing.T) {
	s := openLocal(t, t.TempDir())
	due := base.Add(time.Hour)
	for i := range 1000 {
		read := s.state.read([]string{"t/k"}, base)["t/k"].Version
		if err := s.Commit(t.Context(), []*Evaluation{{State: []StateChange{{Key: "t/k", Read: read,
			Value: []byte(fmt.Sprint(i)), Expires: due.Add(time.Hour), Due: due}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.state.timers.Len(); n != 1 {
		t.Errorf("%d timer items after 1000 writes of one key, want 1", n)
	}
	if got, _, _ := s.DueTimers(t.Context(), due, 10); len(got) != 1 || string(got[0].Value) != "999" {
		t.Errorf("due at its time: %+v, want the key once, as last written", got)
	}
}

// A dead letter replayed while the finish that made it one still holds
// its lease is claimable once that finish ends, not lost from the index
// until a restart.
func TestReplayDuringItsFinishIsClaimable(t *testing.T) {
	x := newJobIndex(nil, newUnapplied())
	at := time.Unix(1_700_000_000, 0)
	claim := Claim{Owner: "runner", Now: at, Lease: time.Minute, Limits: map[string]int{"a": 1}}
	x.add([]*Job{{ID: "j1", Action: "a", NextAt: at}}, nil)
	if ids, _, err := x.claim(claim); err != nil || !slices.Equal(ids, []string{"j1"}) {
		t.Fatalf("claim: %v, %v; want j1", ids, err)
	}
	l := x.beginFinish("runner", "j1")
	if l == nil {
		t.Fatal("beginFinish: the runner's lease is not found")
	}
	x.add([]*Job{{ID: "j1", Action: "a", NextAt: at}}, nil) // replayed: its dead state is readable already
	x.endFinish("j1", l, true, false, time.Time{})          // the finish that made it dead ends
	if n := x.count(); n != 1 {
		t.Errorf("%d jobs pending, want 1: the replay", n)
	}
	if ids, _, err := x.claim(claim); err != nil || !slices.Equal(ids, []string{"j1"}) {
		t.Errorf("claim after the finish: %v, %v; want the replayed j1", ids, err)
	}
}

// New jobs are held with their events for their first claim, at most
// freshMax of them, and each is handed out once.
func TestNewJobsHeldForTheirClaim(t *testing.T) {
	x := newJobIndex(nil, nil)
	ev := eventNo(1)
	var jobs []*Job
	for i := range freshMax + 10 {
		jobs = append(jobs, &Job{ID: JobID(ev.ID, "r", i, 0), EventID: ev.ID, Action: "a", State: Pending, NextAt: base})
	}
	x.add(jobs, map[string]*event.Event{ev.ID: ev})
	if len(x.fresh) != freshMax {
		t.Fatalf("%d new jobs held, want at most %d", len(x.fresh), freshMax)
	}
	ids := []string{jobs[0].ID, jobs[freshMax].ID}
	got := x.takeFresh(ids)
	if c, ok := got[jobs[0].ID]; !ok || c.Event != ev || c.Job == jobs[0] || c.Job.ID != jobs[0].ID {
		t.Errorf("first job handed out as %+v, want a copy of it with its event", c)
	}
	if _, ok := got[jobs[freshMax].ID]; ok {
		t.Errorf("a job beyond the bound was held")
	}
	if again := x.takeFresh(ids); len(again) != 0 {
		t.Errorf("handed out twice: %v", again)
	}
}

// TestJournalRecordOfAccepted holds the journal record of an accepted
// event to what json.Marshal makes of its journalRecord.
func TestJournalRecordOfAccepted(t *testing.T) {
	ev := eventNo(1)
	ev.Payload = map[string]any{"n": int64(1234567), "s": "<&>"}
	for _, in := range []*Incoming{
		{Event: ev},
		{Event: ev, DedupeKey: "live/room1/1.flv", DedupeTTL: 24 * time.Hour},
		{Event: ev, DedupeKey: "a\"b<\xff>"},
		{Event: ev, DedupeTTL: -time.Second},
	} {
		want, err := json.Marshal(journalRecord{Event: in.Event, DedupeKey: in.DedupeKey, DedupeTTL: in.DedupeTTL})
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeAccepted(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("encodeAccepted(%q, %v) = %s, %v; want %s", in.DedupeKey, in.DedupeTTL, got, err, want)
		}
	}
	bad := *ev
	bad.Duration = math.NaN()
	if _, err := encodeAccepted(&Incoming{Event: &bad}); err == nil {
		t.Error("an event json.Marshal refuses was encoded")
	}
}
