package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// testReadBackAsAccepted: every way an event comes back out of the store
// (evaluation after a restart, a delivery's first claim and its retry, a
// read) gives it as accepted, payload numbers included: int64 when
// integral, as decoding the callback made them, not float64.
func testReadBackAsAccepted(t *testing.T, open Opener) {
	s, reopen := open(t)
	payload := func() map[string]any {
		return map[string]any{"size": int64(1234567), "big": int64(9007199254740993), "rate": 12.5,
			"nested": map[string]any{"list": []any{int64(1), 2.5, "x", nil, true}}}
	}
	newPayloadEvent := func(at time.Time, stream string) *event.Event {
		ev := newEvent(at, stream)
		ev.Payload, ev.PushArgs = payload(), map[string]string{"k": "v"}
		return ev
	}
	same := func(what string, got, want *event.Event) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the event reads back as\n%#v\nwant it as accepted:\n%#v", what, got, want)
		}
	}
	first := newPayloadEvent(base, "first")
	accept(t, s, first, "k/first", time.Hour)
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		same("to evaluate", ev, first)
		return &store.Evaluation{Matched: []string{"r"}, Jobs: []*store.Job{newJob(ev, "r", 0, "x", base)}}
	})
	claimed, _ := claim(t, s, "one", base, nil)
	if len(claimed) != 1 {
		t.Fatalf("claimed %v, want the new job", claimedIDs(claimed))
	}
	same("claimed for its first attempt", claimed[0].Event, first)
	stored, err := s.Job(ctx(t), claimed[0].Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(claimed[0].Job, stored) {
		t.Errorf("claimed job\n%#v\nwant it as stored:\n%#v", claimed[0].Job, stored)
	}
	if err := finish(t, s, "one", claimed[0].Job, store.Pending, base); err != nil {
		t.Fatal(err)
	}
	again, _ := claim(t, s, "one", base.Add(time.Hour), nil)
	if len(again) != 1 {
		t.Fatalf("claimed %v for the retry, want the job", claimedIDs(again))
	}
	same("claimed for its retry", again[0].Event, first)
	if d, err := s.Event(ctx(t), first.ID); err != nil {
		t.Fatal(err)
	} else {
		same("read", d.Event, first)
	}

	// Accepted and not evaluated when the process stops: evaluated from
	// what the store kept.
	waiting := newPayloadEvent(base.Add(time.Second), "waiting")
	accept(t, s, waiting, "k/waiting", time.Hour)
	closeStore(t, s)
	s = reopen()
	defer s.Close()
	got := take(t, s)
	if len(got) != 1 {
		t.Fatalf("to evaluate after reopen: %v, want %s", ids(got), waiting.ID)
	}
	same("to evaluate after reopen", got[0].Event, waiting)
}
