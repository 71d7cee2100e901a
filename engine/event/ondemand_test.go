package event_test

import (
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/event"
)

// TestDecodeOnDemandFixtures decodes the docs' example questions (see
// docs/aliyun-callbacks.md) and one of the same form that the example
// rules answer. Every fixture must have a row.
func TestDecodeOnDemandFixtures(t *testing.T) {
	tests := []struct {
		file string
		want event.Event
	}{
		// The reference page's sample request.
		{"ondemand/request.json", event.Event{Source: event.SourceOnDemand, Kind: event.KindOnDemand,
			Domain: "demo.aliyundoc.com", App: "seq_all", Stream: "ondemand8", Codec: "h264", VBitrate: 2000}},
		// The usage guide's walk-through.
		{"ondemand/guide.json", event.Event{Source: event.SourceOnDemand, Kind: event.KindOnDemand,
			Domain: "test.com", App: "test123", Stream: "teststream", Codec: "h264", VBitrate: 2000}},
		{"ondemand/rec_stream.json", event.Event{Source: event.SourceOnDemand, Kind: event.KindOnDemand,
			Domain: "play.example.com", App: "live", Stream: "rec_room42", Codec: "h265", VBitrate: 2500}},
	}
	var covered []string
	for _, tt := range tests {
		covered = append(covered, tt.file)
		t.Run(tt.file, func(t *testing.T) {
			ev, err := event.DecodeOnDemand(queryOf(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got := *ev
			got.Payload = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n %+v\nwant\n %+v", got, tt.want)
			}
			var raw map[string]any
			if err := json.Unmarshal(readEvent(t, tt.file), &raw); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(ev.Payload, raw) {
				t.Errorf("payload = %v, want the query as sent, %v", ev.Payload, raw)
			}
		})
	}
	files, err := filepath.Glob(filepath.Join(eventsDir, "ondemand", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		if rel := "ondemand/" + filepath.Base(f); !slices.Contains(covered, rel) {
			t.Errorf("%s has no row in this table", rel)
		}
	}
}

func TestDecodeOnDemandRefusesBadQueries(t *testing.T) {
	with := func(edit func(url.Values)) url.Values {
		q := queryOf(t, "ondemand/request.json")
		edit(q)
		return q
	}
	tests := []struct {
		name   string
		q      url.Values
		reason string
		msg    string
	}{
		{"no query", nil, "missing_field", "no query"},
		{"no domain", with(func(q url.Values) { q.Del("domain") }), "missing_field", `"domain" (the streaming domain)`},
		{"an empty app", with(func(q url.Values) { q.Set("app", "") }), "missing_field", `"app" (the AppName)`},
		{"no stream", with(func(q url.Values) { q.Del("stream") }), "missing_field", `"stream" (the stream name)`},
		{"a bitrate in words", with(func(q url.Values) { q.Set("vbitrate", "2M") }), "bad_field", `"vbitrate": want the video bitrate in kbps, such as 2000, got "2M"`},
		{"a negative bitrate", with(func(q url.Values) { q.Set("vbitrate", "-1") }), "bad_field", `"vbitrate"`},
		{"a bitrate in exponent form", with(func(q url.Values) { q.Set("vbitrate", "2e3") }), "bad_field", `"vbitrate"`},
		{"a bitrate with a bare point", with(func(q url.Values) { q.Set("vbitrate", "2000.") }), "bad_field", `"vbitrate"`},
		{"a bitrate beyond int64", with(func(q url.Values) { q.Set("vbitrate", "99999999999999999999") }), "bad_field", `"vbitrate"`},
		{"a parameter twice", with(func(q url.Values) { q.Add("stream", "other") }), "duplicate_field", `"stream" is given 2 times`},
		{"invalid UTF-8", with(func(q url.Values) { q.Set("stream", "s\xff") }), "invalid_utf8", "UTF-8"},
		{"a long parameter", with(func(q url.Values) { q.Set("stream", strings.Repeat("s", event.MaxQueryValue+1)) }), "query_too_large", `"stream" is 4097 bytes`},
		{"too many parameters", with(func(q url.Values) {
			for i := range event.MaxQueryParams {
				q.Set("p"+strings.Repeat("x", i), "1")
			}
		}), "query_too_large", "parameters: at most 32"},
		{"too many bytes", with(func(q url.Values) {
			for i := range 3 {
				q.Set("big"+string(rune('a'+i)), strings.Repeat("v", event.MaxQueryValue-10))
			}
		}), "query_too_large", "bytes: at most 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := event.DecodeOnDemand(tt.q)
			var de *event.DecodeError
			if !errors.As(err, &de) || de.Reason != tt.reason || !strings.Contains(de.Msg, tt.msg) {
				t.Fatalf("DecodeOnDemand = %+v, %v; want %s containing %q", ev, err, tt.reason, tt.msg)
			}
		})
	}
}

// TestDecodeOnDemandTolerates what the docs leave open: no codec (which
// they say means h264), a codec they do not name, no or a decimal
// bitrate, and parameters Aliyun may add.
func TestDecodeOnDemandTolerates(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(url.Values)
		check func(*event.Event) bool
	}{
		{"no codec", func(q url.Values) { q.Del("codec") },
			func(e *event.Event) bool { return e.Codec == "h264" && e.Payload["codec"] == nil }},
		{"another codec", func(q url.Values) { q.Set("codec", "av1") },
			func(e *event.Event) bool { return e.Codec == "av1" }},
		{"no bitrate", func(q url.Values) { q.Del("vbitrate") },
			func(e *event.Event) bool { return e.VBitrate == 0 }},
		{"an empty bitrate", func(q url.Values) { q.Set("vbitrate", "") },
			func(e *event.Event) bool { return e.VBitrate == 0 }},
		{"a decimal bitrate", func(q url.Values) { q.Set("vbitrate", "2000.75") },
			func(e *event.Event) bool { return e.VBitrate == 2000 }},
		{"a parameter the docs do not name", func(q url.Values) { q.Set("abitrate", "128") },
			func(e *event.Event) bool { return e.Payload["abitrate"] == "128" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queryOf(t, "ondemand/request.json")
			tt.edit(q)
			ev, err := event.DecodeOnDemand(q)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(ev) {
				t.Errorf("decoded %+v", ev)
			}
		})
	}
}

// TestAnswerIsKeptAndShown: the answer is part of the event's JSON (so the
// journal and /api/events hold it) and of its template data; an event that
// asked nothing has none in its JSON.
func TestAnswerIsKeptAndShown(t *testing.T) {
	ev, err := event.DecodeOnDemand(queryOf(t, "ondemand/request.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	if strings.Contains(string(b), `"answer"`) {
		t.Errorf("an event not yet answered has an answer: %s", b)
	}
	ev.Answer = event.Answer{Default: true}
	b, _ = json.Marshal(ev)
	if !strings.Contains(string(b), `"answer":{"need_record":false,"default":true}`) {
		t.Errorf("the default answer not to record is not in %s", b)
	}
	ev.Answer = event.Answer{NeedRecord: true, Formats: []string{"mp4"}, Interval: map[string]int64{"mp4": 1800}, Rule: "r"}
	var back event.Event
	if b, _ = json.Marshal(ev); json.Unmarshal(b, &back) != nil || !reflect.DeepEqual(back.Answer, ev.Answer) {
		t.Errorf("the answer does not survive its JSON: %s", b)
	}
	data := event.TemplateData(ev, nil)["answer"].(map[string]any)
	if data["need_record"] != true || data["rule"] != "r" || !slices.Equal(data["formats"].([]string), []string{"mp4"}) {
		t.Errorf("template data answer = %v", data)
	}
}

func FuzzDecodeOnDemand(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(eventsDir, "ondemand", "*.json"))
	for _, p := range files {
		f.Add(queryOf(f, filepath.Join("ondemand", filepath.Base(p))).Encode())
	}
	for _, s := range []string{
		"", "domain=d", "domain=d&app=a&stream=s", "domain=d&app=a&stream=s&vbitrate=1.5",
		"domain=d&app=a&stream=s&vbitrate=.5", "domain=d&app=a&stream=s&vbitrate=99999999999999999999",
		"domain=d&domain=e&app=a&stream=s", "domain=%ff&app=a&stream=s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // what intake hands on: the pairs it could read
		if len(q) == 0 {
			q = nil
		}
		ev, err := event.DecodeOnDemand(q)
		checkDecoded(t, ev, err, event.SourceOnDemand, event.KindOnDemand, true)
		if err == nil && (ev.Codec == "" || ev.VBitrate < 0) {
			t.Fatalf("codec %q, vbitrate %d", ev.Codec, ev.VBitrate)
		}
		if err == nil {
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("the event cannot be journaled: %v", err)
			}
		}
	})
}
