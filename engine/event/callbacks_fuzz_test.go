package event_test

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/event"
)

// seedBodies adds the fixtures of dir and bodies that have broken decoders
// before.
func seedBodies(f *testing.F, dir string) {
	files, err := filepath.Glob(filepath.Join(eventsDir, dir, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in %s: %v", dir, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "null", "[]", "{", `{"domain":"d","app":"a","stream":"s"}`, `{"DomainName":1}`,
		`{"domain":"d","app":"a","stream":"s","result":[{"suggestion":"block","rate":"x"}]}`,
		`{"Event":"e","TaskId":"t","TaskStatus":1e300,"EventTime":-1}`,
		`{"Event":"e","TaskId":"t","TaskInfo":{"DstUrl":"rtmp://%zz/a/b?auth_key=1"}}`,
		`{"EventType":"AddLiveRecordVideoComplete","VideoId":"v","Status":"s","EventTime":"2017-12-08T09:26:17+99:00"}`,
		`{"domain":"d","app":"a","stream":"s","CreateTime":1e400}`, strings.Repeat(`{"a":`, 40),
	} {
		f.Add([]byte(s))
	}
}

// checkDecoded: a refusal is a DecodeError with a reason; an accepted event
// has its source and kind, the stream when required, and its payload.
func checkDecoded(t *testing.T, ev *event.Event, err error, source, kind string, needStream bool) {
	t.Helper()
	if err != nil {
		var de *event.DecodeError
		if !errors.As(err, &de) || de.Reason == "" || de.Msg == "" {
			t.Fatalf("error %v (%T) is not a DecodeError with a reason", err, err)
		}
		return
	}
	if ev.Source != source || ev.Kind != kind || ev.Payload == nil {
		t.Fatalf("source %q, kind %q, payload %v", ev.Source, ev.Kind, ev.Payload)
	}
	if needStream && (ev.Domain == "" || ev.App == "" || ev.Stream == "") {
		t.Fatalf("accepted without domain/app/stream: %+v", ev)
	}
}

func FuzzDecodeStream(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(eventsDir, "stream", "*.json"))
	for _, p := range files {
		f.Add(queryOf(f, filepath.Join("stream", filepath.Base(p))).Encode())
	}
	for _, s := range []string{
		"", "action=publish", "action=publish&id=s&app=d&appname=a&time=-1",
		"action=publish&id=s&app=d&appname=a&usrargs=%25zz%26auth_key%3D1",
		"action=publish&id=s&app=d&appname=a&width=99999999999999999999",
		"action=x&action=y&id=s&app=d&appname=a", "id=%ff&app=d&appname=a&action=p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // what intake hands on: the pairs it could read
		if len(q) == 0 {
			q = nil
		}
		ev, err := event.DecodeStream(q)
		checkDecoded(t, ev, err, event.SourceStream, event.KindStream, true)
		if err == nil && (ev.Event == "" || ev.IngestDomain != ev.Domain) {
			t.Fatalf("event %q, ingest domain %q, domain %q", ev.Event, ev.IngestDomain, ev.Domain)
		}
		if err == nil && ev.PushArgs["auth_key"] != "" {
			t.Fatalf("auth_key in push_args: %v", ev.PushArgs)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	seedBodies(f, "snapshot")
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.DecodeSnapshot(body)
		checkDecoded(t, ev, err, event.SourceSnapshot, event.KindSnapshot, true)
	})
}

func FuzzDecodeVideoModeration(f *testing.F) {
	seedBodies(f, "moderation")
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.DecodeVideoModeration(body)
		checkDecoded(t, ev, err, event.SourceVideoModeration, event.KindModeration, true)
	})
}

func FuzzDecodeAudioModeration(f *testing.F) {
	seedBodies(f, "moderation")
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.DecodeAudioModeration(body)
		checkDecoded(t, ev, err, event.SourceAudioModeration, event.KindModeration, true)
	})
}

func FuzzDecodeRelay(f *testing.F) {
	seedBodies(f, "relay")
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.DecodeRelay(body)
		checkDecoded(t, ev, err, event.SourceRelay, event.KindRelay, false)
		if err == nil && (ev.Event == "" || ev.TaskID == "") {
			t.Fatalf("accepted without Event or TaskId: %+v", ev)
		}
	})
}

func FuzzDecodeVOD(f *testing.F) {
	seedBodies(f, "vod")
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.DecodeVOD(body)
		checkDecoded(t, ev, err, event.SourceVOD, event.KindVOD, false)
		if err == nil && ev.Event == "" {
			t.Fatalf("accepted without EventType: %+v", ev)
		}
	})
}
