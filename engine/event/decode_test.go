package event_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/event"
)

const eventsDir = "../../testdata/events"

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(eventsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeRecordSeeds decodes every captured callback and checks what a
// rule would see. Every file in testdata/events must have a row, so a new
// sample cannot slip in untested.
func TestDecodeRecordSeeds(t *testing.T) {
	tests := []struct {
		file                string
		kind, ev, format    string
		domain, app, stream string
		uri                 string
		duration            float64
		start, stop         int64
		pushArgs            map[string]string
	}{
		{
			file: "file_flv.json", kind: event.KindFile, format: "flv",
			domain: "live.aliyunlive.com", app: "live", stream: "hello",
			uri:      "live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv",
			duration: 69.403, start: 1488985786, stop: 1488985840,
		},
		{
			// duration and start_time arrive as numeric strings here.
			file: "file_short_m3u8.json", kind: event.KindFile, format: "m3u8",
			domain: "play.example.com", app: "live", stream: "room42",
			uri:      "record/live/room42/0_2024-05-01-20:00:03_2024-05-01-20:00:08.m3u8",
			duration: 4.5, start: 1714564803, stop: 1714564808,
			pushArgs: map[string]string{"callback_orderid": "A1001"},
		},
		{file: "record_error.json", kind: event.KindStatus, ev: "record_error", domain: "gs_domain", app: "gs_app", stream: "gs_stream"},
		{file: "record_error_detail.json", kind: event.KindStatus, ev: "record_error", domain: "play.example.com", app: "live", stream: "room42"},
		{file: "record_paused.json", kind: event.KindStatus, ev: "record_paused", domain: "live.aliyunlive.com", app: "gs_app", stream: "gs_stream"},
		{file: "record_resumed.json", kind: event.KindStatus, ev: "record_resumed", domain: "live.aliyunlive.com", app: "gs_app", stream: "gs_stream"},
		{file: "record_started.json", kind: event.KindStatus, ev: "record_started", domain: "live.aliyunlive.com", app: "live", stream: "hello"},
	}
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var covered []string
	for _, tt := range tests {
		covered = append(covered, tt.file)
		t.Run(tt.file, func(t *testing.T) {
			body := readEvent(t, tt.file)
			ev, err := event.DecodeRecord(body)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if ev.Source != event.SourceRecord {
				t.Errorf("source = %q, want %q", ev.Source, event.SourceRecord)
			}
			checks := []struct{ field, got, want string }{
				{"kind", ev.Kind, tt.kind}, {"event", ev.Event, tt.ev}, {"format", ev.Format, tt.format},
				{"domain", ev.Domain, tt.domain}, {"app", ev.App, tt.app}, {"stream", ev.Stream, tt.stream},
				{"uri", ev.URI, tt.uri},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
				}
			}
			if ev.Duration != tt.duration || ev.StartTime != tt.start || ev.StopTime != tt.stop {
				t.Errorf("duration/start/stop = %v/%d/%d, want %v/%d/%d",
					ev.Duration, ev.StartTime, ev.StopTime, tt.duration, tt.start, tt.stop)
			}
			if !maps.Equal(ev.PushArgs, tt.pushArgs) {
				t.Errorf("push_args = %v, want %v", ev.PushArgs, tt.pushArgs)
			}
			// The payload is the whole body, so rules can reach fields
			// Aliyun adds later.
			var raw map[string]any
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatal(err)
			}
			if got, want := slices.Sorted(maps.Keys(ev.Payload)), slices.Sorted(maps.Keys(raw)); !slices.Equal(got, want) {
				t.Errorf("payload keys = %v, want %v", got, want)
			}
		})
	}
	for _, f := range files {
		if !slices.Contains(covered, filepath.Base(f)) {
			t.Errorf("%s has no row in this table", f)
		}
	}
}

func TestDecodeRecordPayloadKeepsExtraFields(t *testing.T) {
	ev, err := event.DecodeRecord(readEvent(t, "record_error_detail.json"))
	if err != nil {
		t.Fatal(err)
	}
	info, ok := ev.Payload["error_info"].(map[string]any)
	if !ok {
		t.Fatalf("payload error_info = %#v, want an object", ev.Payload["error_info"])
	}
	if info["code"] != "BucketNotFound" || info["message"] != "Bucket not found" {
		t.Errorf("error_info = %v", info)
	}
}

func TestDecodeRecordLenient(t *testing.T) {
	const base = `"domain":"d","app":"a","stream":"s"`
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, ev *event.Event)
	}{
		{
			name: "numeric strings with spaces",
			body: `{` + base + `,"uri":"x.flv","duration":" 12.5 ","start_time":"100","stop_time":"200"}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Duration != 12.5 || ev.StartTime != 100 || ev.StopTime != 200 {
					t.Errorf("got %v/%d/%d, want 12.5/100/200", ev.Duration, ev.StartTime, ev.StopTime)
				}
			},
		},
		{
			name: "integers stay integers in the payload",
			body: `{` + base + `,"n":3,"f":2.5,"big":1714564803000}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Payload["n"] != int64(3) || ev.Payload["f"] != 2.5 || ev.Payload["big"] != int64(1714564803000) {
					t.Errorf("payload = %#v", ev.Payload)
				}
			},
		},
		{
			name: "null well-known fields stay zero",
			body: `{` + base + `,"uri":null,"event":null,"duration":null,"push_args":null}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.URI != "" || ev.Event != "" || ev.Duration != 0 || ev.PushArgs != nil || ev.Kind != event.KindUnknown {
					t.Errorf("got %+v", ev)
				}
			},
		},
		{
			name: "neither event nor uri is unknown",
			body: `{` + base + `}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Kind != event.KindUnknown {
					t.Errorf("kind = %q, want unknown", ev.Kind)
				}
			},
		},
		{
			name: "event wins over uri",
			body: `{` + base + `,"event":"record_error","uri":"a/b.mp4"}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Kind != event.KindStatus || ev.Format != "mp4" {
					t.Errorf("kind/format = %q/%q, want status/mp4", ev.Kind, ev.Format)
				}
			},
		},
		{
			name: "push_args numbers and booleans become strings, nested values are dropped",
			body: `{` + base + `,"push_args":{"callback_a":"x","callback_n":7,"callback_b":true,"callback_o":{"k":1},"callback_null":null}}`,
			check: func(t *testing.T, ev *event.Event) {
				want := map[string]string{"callback_a": "x", "callback_n": "7", "callback_b": "true"}
				if !maps.Equal(ev.PushArgs, want) {
					t.Errorf("push_args = %v, want %v", ev.PushArgs, want)
				}
			},
		},
		{
			name: "nesting at the limit",
			body: `{` + base + `,"x":` + strings.Repeat("[", event.MaxDepth-1) + strings.Repeat("]", event.MaxDepth-1) + `}`,
			check: func(t *testing.T, ev *event.Event) {
				if _, ok := ev.Payload["x"].([]any); !ok {
					t.Errorf("payload x = %T, want an array", ev.Payload["x"])
				}
			},
		},
		{
			name: "as many keys as the limit",
			body: `{` + base + manyKeys(event.MaxKeys-3) + `}`,
			check: func(t *testing.T, ev *event.Event) {
				if len(ev.Payload) != event.MaxKeys {
					t.Errorf("payload has %d keys, want %d", len(ev.Payload), event.MaxKeys)
				}
			},
		},
		{
			name: "the keys of a large object again in nested ones",
			body: `{` + base + manyKeys(40) + `,"n":{` + manyKeys(40)[1:] + `,"m":{"k1":1}},"o":[{"k2":1},{"k2":2}]}`,
			check: func(t *testing.T, ev *event.Event) {
				if len(ev.Payload) != 45 {
					t.Errorf("payload has %d keys, want 45", len(ev.Payload))
				}
			},
		},
		{
			name: "escapes resolved as encoding/json resolves them",
			body: `{"domain":"d","app":"a","stream":"r\u00f6om\/1","x":"\ud83d\ude00 \ud83d \"q\"\t\\"}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Stream != "röom/1" || ev.Payload["x"] != "😀 \ufffd \"q\"\t\\" {
					t.Errorf("stream %q, payload x %q", ev.Stream, ev.Payload["x"])
				}
			},
		},
		{
			name: "numbers in the payload",
			body: `{` + base + `,"zero":-0,"neg":-7,"exp":1E2,"beyond_int64":9223372036854775808,"tiny":1e-400}`,
			check: func(t *testing.T, ev *event.Event) {
				want := map[string]any{"zero": int64(0), "neg": int64(-7), "exp": 100.0, "beyond_int64": 9223372036854775808.0, "tiny": 0.0}
				for k, v := range want {
					if ev.Payload[k] != v {
						t.Errorf("payload %s = %#v, want %#v", k, ev.Payload[k], v)
					}
				}
			},
		},
		{
			name: "empty objects and arrays stay empty, not null",
			body: ` ` + "\n\t" + `{` + base + `,"o":{},"a":[],"n":[[],{}]}` + "\r\n ",
			check: func(t *testing.T, ev *event.Event) {
				b, err := json.Marshal(ev.Payload)
				if err != nil || !strings.Contains(string(b), `"a":[],`) || !strings.Contains(string(b), `"n":[[],{}],"o":{}`) {
					t.Errorf("payload encodes as %s (%v)", b, err)
				}
			},
		},
		{
			name: "one key in several objects, brackets and quotes inside strings",
			body: `{` + base + `,"a":{"k":1,"s":"}{[\"k\":"},"b":[{"k":2},{"k":3}],"c\"d":"]]]"}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Payload["c\"d"] != "]]]" || ev.Payload["a"].(map[string]any)["s"] != `}{["k":` {
					t.Errorf("payload = %v", ev.Payload)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := event.DecodeRecord([]byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			tt.check(t, ev)
		})
	}
}

func TestDecodeRecordRefuses(t *testing.T) {
	const base = `"domain":"d","app":"a","stream":"s"`
	tests := []struct {
		name   string
		body   string
		reason string
		msg    string // the message must contain this
	}{
		{"empty body", ``, "empty_body", "empty body"},
		{"whitespace", " \n\t\r ", "empty_body", "empty body"},
		{"not JSON", `domain=d&app=a`, "invalid_json", "not valid JSON"},
		{"truncated object", `{"domain":"d"`, "invalid_json", "not valid JSON"},
		{"JSON array", `[{` + base + `}]`, "not_object", "JSON array"},
		{"JSON string", `"hello"`, "not_object", "JSON string"},
		{"number", `42`, "not_object", "JSON number"},
		{"boolean", `true`, "not_object", "JSON boolean"},
		{"null", `null`, "not_object", "JSON null"},
		{"trailing comma", `{` + base + `,}`, "invalid_json", "not valid JSON"},
		{"single quotes", `{'domain':'d'}`, "invalid_json", "not valid JSON"},
		{"leading zero", `{` + base + `,"duration":01}`, "invalid_json", "not valid JSON"},
		{"bare word", `{` + base + `,"event":record_error}`, "invalid_json", "not valid JSON"},
		{"control character in a string", "{" + base + ",\"event\":\"a\x01\"}", "invalid_json", "not valid JSON"},
		{"unknown escape", `{` + base + `,"event":"\x"}`, "invalid_json", "not valid JSON"},
		{"short unicode escape", `{` + base + `,"event":"\u12"}`, "invalid_json", "not valid JSON"},
		{"byte order mark", "\ufeff{" + base + "}", "invalid_json", "not valid JSON"},
		{"trailing garbage", `{` + base + `} x`, "invalid_json", "data after the top-level value"},
		{"second object", `{` + base + `}{` + base + `}`, "invalid_json", "data after the top-level value"},
		{"missing domain", `{"app":"a","stream":"s"}`, "missing_field", `"domain"`},
		{"missing app", `{"domain":"d","stream":"s"}`, "missing_field", `"app"`},
		{"missing stream", `{"domain":"d","app":"a"}`, "missing_field", `"stream"`},
		{"empty stream", `{"domain":"d","app":"a","stream":""}`, "missing_field", `"stream"`},
		{"domain as number", `{"domain":1,"app":"a","stream":"s"}`, "bad_field", `field "domain": want a string, got number`},
		{"app as object", `{"domain":"d","app":{},"stream":"s"}`, "bad_field", `field "app": want a string, got object`},
		{"event as boolean", `{` + base + `,"event":true}`, "bad_field", `field "event": want a string, got boolean`},
		{"duration as a word", `{` + base + `,"duration":"abc"}`, "bad_field", `field "duration": want a number, got the string "abc"`},
		{"duration NaN", `{` + base + `,"duration":"NaN"}`, "bad_field", `field "duration": want a finite number`},
		{"duration Inf", `{` + base + `,"duration":"Inf"}`, "bad_field", `field "duration": want a finite number`},
		{"duration -Infinity", `{` + base + `,"duration":"-Infinity"}`, "bad_field", `field "duration": want a finite number`},
		{"duration overflowing number", `{` + base + `,"duration":1e400}`, "bad_field", `field "duration"`},
		{"duration as array", `{` + base + `,"duration":[1]}`, "bad_field", `field "duration": want a number, got array`},
		{"start_time as an object", `{` + base + `,"start_time":{"s":1}}`, "bad_field", `field "start_time": want a number, got object`},
		{"stop_time as boolean", `{` + base + `,"stop_time":false}`, "bad_field", `field "stop_time": want a number, got boolean`},
		// A Unix time beyond int64 would silently become a nonsense date.
		{"start_time out of int64 range", `{` + base + `,"start_time":1e300}`, "bad_field", `field "start_time"`},
		{"push_args not an object", `{` + base + `,"push_args":"a=b"}`, "bad_field", `field "push_args": want an object, got string`},
		{"push_args array", `{` + base + `,"push_args":[]}`, "bad_field", `field "push_args": want an object, got array`},
		{"long bad string is truncated", `{` + base + `,"duration":"` + strings.Repeat("z", 100) + `"}`, "bad_field", strings.Repeat("z", 40) + "…"},
		{"nesting beyond the limit", `{` + base + `,"x":` + strings.Repeat("[", event.MaxDepth) + strings.Repeat("]", event.MaxDepth) + `}`, "too_deep", "nested deeper than 32 levels"},
		{"very deep nesting", strings.Repeat("[", 1_000_000), "too_deep", "nested deeper than 32 levels"},
		{"more keys than the limit", `{` + base + manyKeys(event.MaxKeys-2) + `}`, "too_many_keys", "more than 1000 object keys"},
		{"duplicate key", `{` + base + `,"stream":"second"}`, "duplicate_key", `duplicate key "stream"`},
		{"duplicate key in an object with many keys", `{` + base + manyKeys(40) + `,"k3":1}`, "duplicate_key", `duplicate key "k3"`},
		{"duplicate key after a nested object", `{` + base + manyKeys(40) + `,"n":{"x":{"k3":1}},"k39":1}`, "duplicate_key", `duplicate key "k39"`},
		{"duplicate key in a nested object", `{` + base + `,"push_args":{"callback_a":"1","callback_a":"2"}}`, "duplicate_key", `duplicate key "callback_a"`},
		{"duplicate key spelt with an escape", `{` + base + `,"\u0073tream":"t"}`, "duplicate_key", `duplicate key "stream"`},
		{"invalid UTF-8", "{\"domain\":\"d\xff\",\"app\":\"a\",\"stream\":\"s\"}", "invalid_utf8", "not valid UTF-8"},
		{"number beyond float64 deep in the payload", `{` + base + `,"x":{"y":[-1e999]}}`, "bad_field", `field "y": number -1e999 is out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := event.DecodeRecord([]byte(tt.body))
			if err == nil {
				t.Fatalf("DecodeRecord accepted it: %+v", ev)
			}
			if ev != nil {
				t.Errorf("DecodeRecord returned an event with its error")
			}
			var de *event.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			if de.Reason != tt.reason {
				t.Errorf("reason = %q, want %q (%v)", de.Reason, tt.reason, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not contain %q", err, tt.msg)
			}
		})
	}
}

// A decoded event is journaled and sent on as JSON, so it must encode.
func TestDecodedEventsEncodeAsJSON(t *testing.T) {
	tests := []struct{ name, body string }{
		{"overflowing number in the payload", `{"domain":"d","app":"a","stream":"s","x":1e400}`},
		{"overflowing number deep in the payload", `{"domain":"d","app":"a","stream":"s","x":{"y":[-1e999]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := event.DecodeRecord([]byte(tt.body))
			if err != nil {
				return // refusing the body is fine too
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Errorf("event decoded but cannot be encoded again: %v", err)
			}
		})
	}
}

func TestDecodeGeneric(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, ev *event.Event)
	}{
		{
			name: "well-known fields filled",
			body: `{"domain":"d","app":"a","stream":"s","uri":"x/y.MP4","event":"snap","duration":"3","start_time":5,"push_args":{"k":"v"}}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Domain != "d" || ev.App != "a" || ev.Stream != "s" || ev.Event != "snap" ||
					ev.Format != "mp4" || ev.Duration != 3 || ev.StartTime != 5 || ev.PushArgs["k"] != "v" {
					t.Errorf("got %+v", ev)
				}
			},
		},
		{
			name: "mistyped fields stay zero, the rest is kept",
			body: `{"domain":7,"app":"a","duration":"abc","start_time":{},"push_args":"x","stream":"s","extra":[1,2]}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Domain != "" || ev.Duration != 0 || ev.StartTime != 0 || ev.PushArgs != nil {
					t.Errorf("mistyped fields were filled: %+v", ev)
				}
				if ev.App != "a" || ev.Stream != "s" {
					t.Errorf("good fields lost: app %q stream %q", ev.App, ev.Stream)
				}
				if ev.Payload["domain"] != int64(7) || len(ev.Payload["extra"].([]any)) != 2 {
					t.Errorf("payload = %#v", ev.Payload)
				}
			},
		},
		{
			name: "no required fields",
			body: `{"hello":"world"}`,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Payload["hello"] != "world" || ev.Domain != "" {
					t.Errorf("got %+v", ev)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := event.DecodeGeneric("cam-7", []byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeGeneric: %v", err)
			}
			if ev.Source != "cam-7" || ev.Kind != event.KindEvent {
				t.Errorf("source/kind = %q/%q, want cam-7/event", ev.Source, ev.Kind)
			}
			tt.check(t, ev)
		})
	}

	refused := []struct{ name, body, reason string }{
		{"empty", "", "empty_body"},
		{"array", "[]", "not_object"},
		{"garbage", "{", "invalid_json"},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			_, err := event.DecodeGeneric("cam-7", []byte(tt.body))
			var de *event.DecodeError
			if !errors.As(err, &de) || de.Reason != tt.reason {
				t.Errorf("error = %v, want reason %q", err, tt.reason)
			}
		})
	}
}

func TestFormatOf(t *testing.T) {
	tests := []struct{ name, uri, want string }{
		{"flv", "live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv", "flv"},
		{"m3u8", "record/live/room42/x.m3u8", "m3u8"},
		{"upper case", "a/B.MP4", "mp4"},
		{"no extension", "a/b", ""},
		{"empty", "", ""},
		{"dot in a directory only", "a.b/c", ""},
		{"trailing dot", "a/b.", ""},
		{"two extensions", "a/b.tar.gz", "gz"},
		{"colons in the key", "x/0_2024-05-01-20:00:03.flv", "flv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := event.FormatOf(tt.uri); got != tt.want {
				t.Errorf("FormatOf(%q) = %q, want %q", tt.uri, got, tt.want)
			}
		})
	}
}

func TestTemplateData(t *testing.T) {
	ev := &event.Event{Stream: "s", Duration: 2}
	m := event.TemplateData(ev, map[string]any{"suppressed": 3})
	for _, f := range event.Fields {
		if _, ok := m[f]; !ok {
			t.Errorf("template data lacks %q", f)
		}
	}
	if m["stream"] != "s" || m["duration"] != 2.0 || m["suppressed"] != 3 {
		t.Errorf("data = %v", m)
	}
}

// manyKeys is n more members for an object that already has some.
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	return b.String()
}
