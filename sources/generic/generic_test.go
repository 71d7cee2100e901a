package generic_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	_ "github.com/livehook/livehook/sources/generic"
)

func TestEventsNamedByThePath(t *testing.T) {
	s, name, ok := sourceapi.Default().Route("/events/cam-1")
	if !ok || name != "cam-1" || !s.Family() || s.PathFor("ci") != "/events/ci" {
		t.Fatalf("/events/cam-1 routes to %v %q %v", s, name, ok)
	}
	if got, ok := sourceapi.Default().Lookup("plugin.kit"); !ok || got != s {
		t.Errorf("an event a plugin reports is not a generic one: %v", got)
	}
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	withID := http.Header{}
	withID.Set(auth.HeaderWebhookID, "msg_1")
	for _, tt := range []struct {
		name   string
		header http.Header
		key    string
	}{
		{"a Standard Webhooks id", withID, "event\x00cam-1\x00msg_1"},
		{"no id: every copy is new", http.Header{}, ""},
	} {
		r := &sourceapi.Request{Name: name, Header: tt.header, Body: []byte(`{"stream":"s","event":"motion"}`)}
		ev, err := s.Decode(r)
		if err != nil || ev.Source != "cam-1" || ev.Kind != event.KindEvent || ev.Stream != "s" {
			t.Fatalf("%s: decoded %+v, %v", tt.name, ev, err)
		}
		if got := s.DedupeKey(r, ev); got != tt.key {
			t.Errorf("%s: key %q, want %q", tt.name, got, tt.key)
		}
		if got := s.DedupeWindow(ev, w); got != w.File {
			t.Errorf("%s: window %v, want the file window: an id is used once", tt.name, got)
		}
	}
	if got := s.MetricLabel(); got != event.KindEvent {
		t.Errorf("metric label %q, want one for every generic source: %q", got, event.KindEvent)
	}
	if s.Auth != "" {
		t.Errorf("auth %q: a generic sender may give any credential or none", s.Auth)
	}
}
