package aliyunmoderation_test

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	_ "github.com/livehook/livehook/sources/aliyunmoderation"
)

func TestDescriptors(t *testing.T) {
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	keys := map[string]bool{}
	for _, tt := range []struct{ path, source, fixture string }{
		{"/callbacks/moderation/video", event.SourceVideoModeration, "video.json"},
		{"/callbacks/moderation/audio", event.SourceAudioModeration, "audio.json"},
	} {
		s, name, ok := sourceapi.Default().Route(tt.path)
		if !ok || name != tt.source {
			t.Fatalf("%s routes to %v %q", tt.path, s, name)
		}
		// Aliyun documents no signature for moderation callbacks.
		if !s.Allows(http.MethodPost) || s.Auth != "" || s.MetricLabel() != tt.source {
			t.Errorf("%s: methods %v, auth %q, label %q", tt.source, s.Methods, s.Auth, s.MetricLabel())
		}
		body, err := os.ReadFile("../../testdata/events/moderation/" + tt.fixture)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.FromFile(s.Name, body)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := s.Decode(r)
		if err != nil || ev.Source != tt.source || ev.Suggestion != "block" {
			t.Fatalf("%s: %+v, %v", tt.fixture, ev, err)
		}
		k := s.DedupeKey(r, ev)
		if k == "" || keys[k] || s.DedupeWindow(ev, w) != w.Status {
			t.Errorf("%s: key %q (seen %v), window %v", tt.source, k, keys[k], s.DedupeWindow(ev, w))
		}
		keys[k] = true
	}
}
