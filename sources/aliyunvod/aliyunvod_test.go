package aliyunvod_test

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	_ "github.com/livehook/livehook/sources/aliyunvod"
)

func TestDescriptor(t *testing.T) {
	s, name, ok := sourceapi.Default().Route("/callbacks/vod")
	if !ok || name != event.SourceVOD {
		t.Fatalf("/callbacks/vod routes to %v %q", s, name)
	}
	if !s.Allows(http.MethodPost) || s.Auth != "vod_signature" || s.MetricLabel() != event.SourceVOD {
		t.Errorf("methods %v, auth %q, label %q", s.Methods, s.Auth, s.MetricLabel())
	}
}

// TestRetriesAreTold: a video is added to VOD once, so its recording
// events are their video, remembered as long as a file event; any other
// VOD event is its body and X-VOD-TIMESTAMP.
func TestRetriesAreTold(t *testing.T) {
	s, _, _ := sourceapi.Default().Route("/callbacks/vod")
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	decode := func(body string, ts string) (*sourceapi.Request, *event.Event) {
		r, err := s.FromFile(s.Name, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if ts != "" {
			r.Header.Set("X-VOD-TIMESTAMP", ts)
		}
		ev, err := s.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		return r, ev
	}
	file, err := os.ReadFile("../../testdata/events/vod/live_record_complete.json")
	if err != nil {
		t.Fatal(err)
	}
	r, ev := decode(string(file), "1512725178")
	if got, want := s.DedupeKey(r, ev), "aliyun_vod\x00AddLiveRecordVideoComplete\x0043q9fjdhef****\x00success"; got != want || s.DedupeWindow(ev, w) != w.File {
		t.Errorf("recording complete: key %q, window %v; want %q and the file window", got, s.DedupeWindow(ev, w), want)
	}
	other := `{"EventType":"FileUploadComplete","EventTime":"2017-12-08T09:26:17Z","VideoId":"v1","Status":"success"}`
	r1, ev1 := decode(other, "1512725178")
	r2, ev2 := decode(other, "1512725190")
	if k := s.DedupeKey(r1, ev1); k == "" || k == s.DedupeKey(r2, ev2) || s.DedupeWindow(ev1, w) != w.Status {
		t.Errorf("another event: keys %q / %q, window %v", k, s.DedupeKey(r2, ev2), s.DedupeWindow(ev1, w))
	}
}
