package store

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/event"
)

// A record stored with its journal bytes is one JSON object whose keys
// each appear once, and reads back as the record.
func TestPutEventSplicesTheJournalRecord(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev, err := event.DecodeRecord([]byte(`{"domain":"d","app":"live","stream":"s","uri":"live/s/1.flv","duration":61.5}`))
	if err != nil {
		t.Fatal(err)
	}
	ev.ID, ev.ReceivedAt = "01J00000000000000000000000", time.Unix(1714564803, 0).UTC()
	a := &Accepted{Event: ev, DedupeKey: "file:d/live/s/live/s/1.flv", DedupeTTL: time.Hour}
	if err := s.Append(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	rec := &EventRecord{Event: ev, DedupeKey: a.DedupeKey, Matched: []string{"r"}, Errors: []string{"e"}, Replays: 1, Encoded: a.Encoded}
	if err := s.Apply([]*EventRecord{rec}, nil, nil, a.Seq); err != nil {
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
	got, _, err := s.Event(ev.ID)
	if err != nil || got.Event.ID != ev.ID || got.Event.URI != ev.URI || got.DedupeKey != a.DedupeKey ||
		!slices.Equal(got.Matched, rec.Matched) || !slices.Equal(got.Errors, rec.Errors) || got.Replays != 1 {
		t.Errorf("read back %+v, %v; want %+v", got, err, rec)
	}
}
