package event_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
)

// sameAsMarshal fails t unless AppendJSON gives what json.Marshal gives:
// the same bytes, or the same error.
func sameAsMarshal(t *testing.T, ev *event.Event) {
	t.Helper()
	want, wantErr := json.Marshal(ev)
	prefix := []byte("prefix:")
	got, err := event.AppendJSON(bytes.Clone(prefix), ev)
	if wantErr != nil || err != nil {
		if wantErr == nil || err == nil || err.Error() != wantErr.Error() {
			t.Fatalf("AppendJSON error %v, json.Marshal error %v", err, wantErr)
		}
		if !bytes.Equal(got, prefix) {
			t.Fatalf("AppendJSON failed but changed its buffer to %q", got)
		}
		return
	}
	got, ok := bytes.CutPrefix(got, prefix)
	if !ok {
		t.Fatalf("AppendJSON dropped what the buffer held: %q", got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got, want)
	}
}

// TestAppendJSONEveryField sets every field of an event, so a field added
// to Event and not to AppendJSON fails here.
func TestAppendJSONEveryField(t *testing.T) {
	ev := event.EveryField(t, true, "check AppendJSON encodes it")
	sameAsMarshal(t, ev)
	sameAsMarshal(t, &event.Event{})
	sameAsMarshal(t, nil)
}

func TestAppendJSONCases(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 3, 0, time.FixedZone("CST", 8*3600))
	for _, tc := range []struct {
		name string
		ev   event.Event
	}{
		{"escaped strings", event.Event{Stream: `a"b\c`, App: "<live>&", Domain: "tab\there", URI: "\x01\x1f"}},
		{"non-ASCII", event.Event{Stream: "直播间", App: "caf\u00e9", Domain: "line\u2028sep\u2029", URI: "bad\xffutf8"}},
		{"numbers", event.Event{Duration: 1e-7, Rate: 1e21, StartTime: math.MinInt64, StopTime: math.MaxInt64}},
		{"small and large", event.Event{Duration: 5e-324, Rate: 123456789.125, Width: -1}},
		{"exponent", event.Event{Duration: 1.5e-10, Rate: -2.5e300}},
		{"negative zero", event.Event{Duration: math.Copysign(0, -1), Rate: math.Copysign(0, -1)}},
		{"NaN", event.Event{Duration: math.NaN()}},
		{"infinite rate", event.Event{Rate: math.Inf(-1)}},
		{"zone", event.Event{ReceivedAt: at}},
		{"year out of range", event.Event{ReceivedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"empty maps", event.Event{PushArgs: map[string]string{}, Payload: map[string]any{}}},
		{"escaped keys", event.Event{PushArgs: map[string]string{"<k>": "v&", "a": "\n"}, Payload: map[string]any{"é": "x", "\"": nil}}},
		{"payload of other types", event.Event{Payload: map[string]any{"n": json.Number("12.50"), "i": 7, "s": []string{"a"},
			"u": uint8(3), "f32": float32(0.1), "t": at}}},
		{"payload NaN", event.Event{Payload: map[string]any{"x": []any{math.NaN()}}}},
		{"nil inside", event.Event{Payload: map[string]any{"m": map[string]any(nil), "l": []any(nil)}}},
		{"deep payload", event.Event{Payload: deep(100)}},
		{"answer only formats", event.Event{Answer: event.Answer{Formats: []string{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) { sameAsMarshal(t, &tc.ev) })
	}
}

func deep(n int) map[string]any {
	m := map[string]any{"leaf": "x"}
	for i := range n {
		if i%2 == 0 {
			m = map[string]any{"in": m}
		} else {
			m = map[string]any{"list": []any{m}}
		}
	}
	return m
}

// TestAppendJSONCallbacks encodes every captured callback as decoded.
func TestAppendJSONCallbacks(t *testing.T) {
	err := filepath.WalkDir(eventsDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		ev, err := event.DecodeGeneric("fixture", body)
		if err != nil {
			return nil // not an object: nothing to encode
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			ev.ReceivedAt = time.Now()
			sameAsMarshal(t, ev)
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add([]byte(`{"domain":"live.example.com","app":"live","stream":"room1","uri":"live/room1/1.flv","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`),
		"room1", 61.5, int64(1714564803), int64(0))
	f.Add([]byte(`{"a":[1,2.5e-9,"<x>",null,{"b":true}],"c":1e400}`), "a\"b", math.Inf(1), int64(-1), int64(253402300800))
	f.Add([]byte(`{"é":"\u2028","n":-0.0}`), "\xff", 1e21, int64(math.MaxInt64), int64(-62135596801))
	f.Fuzz(func(t *testing.T, body []byte, s string, x float64, n, unix int64) {
		ev, err := event.DecodeRecord(body)
		if err != nil {
			ev = &event.Event{Payload: map[string]any{"body": string(body)}}
		}
		ev.Stream, ev.Label, ev.PushArgs = s, s, map[string]string{s: s}
		ev.Duration, ev.Rate = x, x
		ev.Width, ev.StartTime = n, n
		ev.ReceivedAt = time.Unix(unix, n%1_000_000_000)
		sameAsMarshal(t, ev)
	})
}
