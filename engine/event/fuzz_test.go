package event_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/event"
)

// FuzzDecodeRecord: no body may panic the decoder; an accepted body has
// the fields rules rely on.
func FuzzDecodeRecord(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", " ", "null", "[]", `"s"`, "1", "{", `{"domain":"d","app":"a","stream":"s"} x`,
		`{"domain":1,"app":"a","stream":"s"}`, `{"domain":"d","app":"a","stream":"s","duration":"NaN"}`,
		`{"domain":"d","app":"a","stream":"s","start_time":{"x":1}}`, `{"domain":"d","app":"a","stream":"s","push_args":[1]}`,
		"{\"domain\":\"d\xff\",\"app\":\"a\",\"stream\":\"s\"}", `{"domain":"d","app":"a","stream":"s","x":1e400}`,
		`{"domain":"d","app":"a","stream":"s","stream":"t"}`, strings.Repeat("[", 20000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.DecodeRecord(body)
		if err != nil {
			var de *event.DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v (%T) is not a DecodeError with a reason", err, err)
			}
			return
		}
		if ev.Domain == "" || ev.App == "" || ev.Stream == "" {
			t.Fatalf("accepted without domain/app/stream: %+v", ev)
		}
		switch ev.Kind {
		case event.KindFile, event.KindStatus, event.KindUnknown:
		default:
			t.Fatalf("kind = %q", ev.Kind)
		}
		if ev.Source != event.SourceRecord || ev.Payload == nil {
			t.Fatalf("source %q, payload %v", ev.Source, ev.Payload)
		}
	})
}
