package store

import (
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/event"
)

// BenchmarkClaimEventRead is a claim reading a recording callback back out
// of its event record, as the store wrote it, for a delivery not held in
// memory since its commit: the event alone by event.UnmarshalStoredRecord,
// against the whole record by encoding/json, as claims read it before.
//
//	go test -run '^$' -bench ClaimEventRead -benchmem ./engine/store/
func BenchmarkClaimEventRead(b *testing.B) {
	s := openLocal(b, b.TempDir())
	ev, err := event.DecodeRecord([]byte(`{"domain":"live.example.com","app":"live","stream":"room1","uri":"live/room1/2026-05-01-12-00-03_2026-05-01-12-01-04.m3u8","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`))
	if err != nil {
		b.Fatal(err)
	}
	ev.ID, ev.ReceivedAt = "01JQ4Z5Y6X7W8V9T0S1R2Q3P4N", time.Now()
	if _, err := s.Accept(b.Context(), &Incoming{Event: ev, DedupeKey: "file|live.example.com|live|room1|" + ev.URI, DedupeTTL: time.Hour}); err != nil {
		b.Fatal(err)
	}
	taken(b, s)
	job := &Job{ID: JobID(ev.ID, "every-file", 0, 0), EventID: ev.ID, Rule: "every-file", Action: "out", Type: "webhook",
		State: Pending, Created: ev.ReceivedAt, NextAt: ev.ReceivedAt, Attempts: []Attempt{}}
	if err := s.Commit(b.Context(), []*Evaluation{{EventID: ev.ID, Matched: []string{"every-file"}, Jobs: []*Job{job}}}); err != nil {
		b.Fatal(err)
	}
	var record []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		record = append(record, tx.Bucket(bucketEvents).Get([]byte(ev.ID))...)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct {
		name string
		read func() (*event.Event, error)
	}{
		{"event_only", func() (*event.Event, error) { return event.UnmarshalStoredRecord(record) }},
		{"whole_record_by_encoding_json", func() (*event.Event, error) {
			var rec EventRecord
			err := json.Unmarshal(record, &rec)
			return rec.Event, err
		}},
	} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, err := r.read(); err != nil || got == nil || got.ID != ev.ID {
					b.Fatalf("read %v, %v", got, err)
				}
			}
		})
	}
}
