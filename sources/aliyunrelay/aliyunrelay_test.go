package aliyunrelay_test

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	_ "github.com/livehook/livehook/sources/aliyunrelay"
)

func TestDescriptor(t *testing.T) {
	s, name, ok := sourceapi.Default().Route("/callbacks/relay")
	if !ok || name != event.SourceRelay {
		t.Fatalf("/callbacks/relay routes to %v %q", s, name)
	}
	if !s.Allows(http.MethodPost) || s.Auth != "" || s.MetricLabel() != event.SourceRelay {
		t.Errorf("methods %v, auth %q, label %q", s.Methods, s.Auth, s.MetricLabel())
	}
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	keys := map[string]string{}
	for _, f := range []string{"running.json", "offline.json"} {
		body, err := os.ReadFile("../../testdata/events/relay/" + f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.FromFile(s.Name, body)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := s.Decode(r)
		if err != nil || ev.Kind != event.KindRelay || ev.Stream != "room42" {
			t.Fatalf("%s: %+v, %v", f, ev, err)
		}
		if s.DedupeWindow(ev, w) != w.Status {
			t.Errorf("%s: window %v", f, s.DedupeWindow(ev, w))
		}
		keys[f] = s.DedupeKey(r, ev)
	}
	if keys["running.json"] == "" || keys["running.json"] == keys["offline.json"] {
		t.Errorf("two changes of one task share a key: %q", keys)
	}
}
