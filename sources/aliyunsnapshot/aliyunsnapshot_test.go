package aliyunsnapshot_test

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	_ "github.com/livehook/livehook/sources/aliyunsnapshot"
)

func TestDescriptor(t *testing.T) {
	s, name, ok := sourceapi.Default().Route("/callbacks/snapshot")
	if !ok || name != event.SourceSnapshot {
		t.Fatalf("/callbacks/snapshot routes to %v %q", s, name)
	}
	if !s.Allows(http.MethodPost) || s.Allows(http.MethodGet) || s.Auth != "aliyun_signature" || s.MetricLabel() != event.SourceSnapshot {
		t.Errorf("methods %v, auth %q, label %q", s.Methods, s.Auth, s.MetricLabel())
	}
	body, err := os.ReadFile("../../testdata/events/snapshot/live_snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.FromFile(s.Name, body)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.Decode(r)
	if err != nil || ev.Kind != event.KindSnapshot || ev.URI != "snapshot/live/room42/1714564805.jpg" {
		t.Fatalf("the example snapshot: %+v, %v", ev, err)
	}
	// Overwrite mode stores every snapshot under one key: the body and the
	// signed timestamp tell them apart, within the status window.
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	r.Header.Set(auth.HeaderAliTimestamp, "1714564806")
	first := s.DedupeKey(r, ev)
	r2 := *r
	r2.Header = http.Header{auth.HeaderAliTimestamp: {"1714564811"}}
	if first == "" || s.DedupeKey(&r2, ev) == first || s.DedupeWindow(ev, w) != w.Status {
		t.Errorf("keys %q / %q, window %v", first, s.DedupeKey(&r2, ev), s.DedupeWindow(ev, w))
	}
}
