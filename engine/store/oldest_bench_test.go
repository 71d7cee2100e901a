package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// BenchmarkOldestPending reads the oldest of 10,000 pending jobs, as the
// status page does, against reading one job by id in the same run: the
// ratio is what the page costs in job reads. The jobs were planned in
// the order their events came, as a backlog is.
func BenchmarkOldestPending(b *testing.B) {
	const pending = 10_000
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var evals []*store.Evaluation
	for i := range pending {
		at := base.Add(time.Duration(i) * time.Millisecond)
		ev := &event.Event{ID: ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(), Source: event.SourceRecord,
			Kind: event.KindStatus, Stream: "s", ReceivedAt: at}
		if _, err := s.Accept(ctx, &store.Incoming{Event: ev}); err != nil {
			b.Fatal(err)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	for {
		batch, err := s.Unevaluated(done, 1000)
		if err != nil || len(batch) == 0 {
			break
		}
		for _, a := range batch {
			evals = append(evals, &store.Evaluation{EventID: a.Event.ID, Matched: []string{"r"}, Jobs: []*store.Job{{
				ID: store.JobID(a.Event.ID, "r", 0, 0), EventID: a.Event.ID, Rule: "r", Action: "x", Type: "log",
				State: store.Pending, Created: a.Event.ReceivedAt, NextAt: a.Event.ReceivedAt, Attempts: []store.Attempt{}}}})
		}
	}
	if err := s.Commit(ctx, evals); err != nil || len(evals) != pending {
		b.Fatalf("commit %d: %v", len(evals), err)
	}
	one := evals[pending/2].Jobs[0].ID
	var oldest, read time.Duration
	for b.Loop() {
		start := time.Now()
		j, err := s.OldestPending(ctx)
		oldest += time.Since(start)
		if err != nil || j == nil || j.ID != evals[0].Jobs[0].ID {
			b.Fatalf("OldestPending = %v, %v", j, err)
		}
		start = time.Now()
		if _, err := s.Job(ctx, one); err != nil {
			b.Fatal(err)
		}
		read += time.Since(start)
	}
	b.ReportMetric(float64(oldest)/float64(read), "job-reads")
}
