package sweeper

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	_ "github.com/livehook/livehook/sources/all"
)

func TestReadRecord(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{})
	cases := []struct {
		name    string
		r       record
		want    string // kind/event/stream of the event, or the error's words
		wantErr bool
	}{
		{"file", record{source: event.SourceRecord, content: `{"domain":"play.example.com","app":"live","stream":"room42","uri":"a/b.flv","duration":1.5}`}, "file//room42", false},
		{"status", record{source: event.SourceRecord, content: `{"domain":"play.example.com","app":"live","stream":"room42","event":"record_paused"}`}, "status/record_paused/room42", false},
		{"a date before the JSON, as the docs' example has", record{source: event.SourceRecord,
			content: `7月26日 16:14{"domain":"al.example.com","app":"live","stream":"livestream01","event":"record_started"}`}, "status/record_started/livestream01", false},
		{"stream, a JSON object of the query", record{source: event.SourceStream,
			content: `{"action":"publish","id":"room42","app":"push.example.com","appname":"live","time":1714564801}`}, "stream/publish/room42", false},
		{"stream, completed from the record", record{source: event.SourceStream, domain: "push.example.com", app: "live", stream: "room42",
			content: `{"action":"publish_done","app":"push.example.com"}`}, "stream/publish_done/room42", false},
		{"empty", record{source: event.SourceRecord, content: "  "}, "NotifyContent is empty", true},
		{"not JSON", record{source: event.SourceRecord, content: "action=publish"}, "not valid JSON", true},
		{"a recording without its stream", record{source: event.SourceRecord, content: `{"domain":"play.example.com","app":"live"}`}, "stream", true},
		{"stream with a list in it", record{source: event.SourceStream, content: `{"action":["publish"]}`}, "want a string or a number", true},
		{"stream without its action", record{source: event.SourceStream, stream: "room42", app: "live", domain: "push.example.com", content: `{}`}, "action", true},
		{"no time", record{source: event.SourceRecord, content: `{}`, at: time.Time{}, rawTime: "yesterday"}, `NotifyTime "yesterday"`, true},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if tt.r.rawTime == "" {
				tt.r.at = at
			}
			ev, key, err := s.read(tt.r)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("err = %v, want one saying %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.Kind + "/" + ev.Event + "/" + ev.Stream; got != tt.want || ev.Source != tt.r.source || key == "" {
				t.Errorf("event %s from %s, key %q; want %s", got, ev.Source, key, tt.want)
			}
		})
	}
}

// TestReadTakesTheSigningTime: the identity of a signed callback is the
// one intake took, when the record has the headers; without them, the
// time it was sent stands in for the signature's.
func TestReadTakesTheSigningTime(t *testing.T) {
	s := New(Options{})
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	body := `{"domain":"play.example.com","app":"live","stream":"room42","event":"record_paused"}`
	header := headerAt([]json.RawMessage{json.RawMessage(`"{\"ALI-LIVE-TIMESTAMP\":[\"1714564800\"]}"`)}, 0)
	_, withHeader, err := s.read(record{source: event.SourceRecord, content: body, at: at.Add(time.Minute), header: header})
	if err != nil {
		t.Fatal(err)
	}
	_, sentAt, _ := s.read(record{source: event.SourceRecord, content: body, at: at})
	_, later, _ := s.read(record{source: event.SourceRecord, content: body, at: at.Add(time.Minute)})
	if withHeader != sentAt || sentAt == later {
		t.Errorf("identities: with the header %q, sent at the signature's time %q, a minute later %q", withHeader, sentAt, later)
	}
}

func TestHeaderAt(t *testing.T) {
	cases := []struct {
		raw  string
		want string // the ALI-LIVE-TIMESTAMP read, "-" for no header at all
	}{
		{`{"ALI-LIVE-TIMESTAMP":["1714564800"],"Content-Type":["application/json"]}`, "1714564800"},
		{`"{\"Ali-Live-Timestamp\":[\"1714564800\"]}"`, "1714564800"},
		{`{"ali-live-timestamp":"1714564800"}`, "1714564800"},
		{`{"Content-Type":["application/json"]}`, ""},
		{`{"ALI-LIVE-TIMESTAMP":42}`, ""},
		{`"not an object"`, "-"},
		{`[1,2]`, "-"},
		{`null`, "-"},
		{``, "-"},
	}
	for _, tt := range cases {
		var all []json.RawMessage
		if tt.raw != "" {
			all = []json.RawMessage{json.RawMessage(tt.raw)}
		}
		h := headerAt(all, 0)
		got := "-"
		if h != nil {
			got = h.Get("ALI-LIVE-TIMESTAMP")
		}
		if got != tt.want {
			t.Errorf("headerAt(%s) timestamp %q, want %q", tt.raw, got, tt.want)
		}
	}
	if headerAt(nil, 3) != nil {
		t.Error("a reply without NotifyHeader gave headers")
	}
}

func FuzzReadRecord(f *testing.F) {
	f.Add(event.SourceRecord, `{"domain":"d","app":"a","stream":"s","uri":"x.flv"}`, `{"ALI-LIVE-TIMESTAMP":["1"]}`)
	f.Add(event.SourceStream, `{"action":"publish","id":"s","app":"d","appname":"a"}`, `"{}"`)
	f.Add(event.SourceRecord, `日 {"domain":"d"}`, ``)
	s := New(Options{})
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, source, content, header string) {
		if source != event.SourceRecord && source != event.SourceStream {
			source = event.SourceRecord
		}
		var all []json.RawMessage
		if json.Valid([]byte(header)) {
			all = []json.RawMessage{json.RawMessage(header)}
		}
		r := record{source: source, domain: "push.example.com", app: "live", stream: "s", content: content, header: headerAt(all, 0), at: at}
		ev, _, err := s.read(r)
		if err == nil && (ev.Source != source || about(ev) == "") {
			t.Errorf("read %q as %+v", content, ev)
		}
	})
}
