package store

import (
	"context"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A store written before the listing's indexes existed is indexed at
// open, in several transactions, with each event's jobs counted.
func TestOldStoreIsIndexedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	ctx := context.Background()
	var evals []*Evaluation
	for i := 1; i <= 8; i++ {
		ev := eventNo(i)
		if _, err := s.Accept(ctx, &Incoming{Event: ev}); err != nil {
			t.Fatal(err)
		}
		e := &Evaluation{EventID: ev.ID}
		if i%2 == 0 {
			state := Delivered
			if i == 4 {
				state = Dead
			}
			e.Matched = []string{"r"}
			e.Jobs = []*Job{{ID: JobID(ev.ID, "r", 0, 0), EventID: ev.ID, Rule: "r", Action: "a", State: state, Created: base, NextAt: base}}
		}
		evals = append(evals, e)
	}
	if got := taken(t, s); len(got) != 8 {
		t.Fatalf("took %d events", len(got))
	}
	if err := s.Commit(ctx, evals); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// As an older livehook left it: no summaries, no indexes.
	db, err := bolt.Open(dir+"/livehook.db", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSummary, bucketEventIndex, bucketStreamIndex} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyIndexed)
	})
	if err != nil || db.Close() != nil {
		t.Fatal(err)
	}
	defer func(n int) { indexBatch = n }(indexBatch)
	indexBatch = 3
	s = openLocal(t, dir)
	streams := func(f EventFilter) []string {
		f.Limit = 100
		recs, err := s.Events(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.Event.Stream)
		}
		return out
	}
	for _, tc := range []struct {
		f    EventFilter
		want []string
	}{
		{EventFilter{}, []string{"room8", "room7", "room6", "room5", "room4", "room3", "room2", "room1"}},
		{EventFilter{Outcome: OutcomeDelivered}, []string{"room8", "room6", "room2"}},
		{EventFilter{Outcome: OutcomeDead}, []string{"room4"}},
		{EventFilter{Outcome: OutcomeNone, Stream: "room"}, []string{"room7", "room5", "room3", "room1"}},
		{EventFilter{Rule: "r", Source: eventNo(1).Source}, []string{"room8", "room6", "room4", "room2"}},
	} {
		if got := streams(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
	d, err := s.Event(ctx, eventNo(4).ID)
	if err != nil || d.Outcome != OutcomeDead || d.Deliveries != (Deliveries{Dead: 1}) {
		t.Errorf("event 4 after indexing: %+v, %v", d.Summary, err)
	}
}
