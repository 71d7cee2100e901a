package event

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// sameAsReference fails t unless UnmarshalStored reads data as
// encoding/json does, and reports whether the fast reading took it.
func sameAsReference(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	var want Event
	wantErr := unmarshalStoredReference(data, &want)
	got := Event{Stream: "left over"} // what ev held before must not show
	err := UnmarshalStored(data, &got)
	_, fast = storedFast(data)
	sameEvent(t, data, &got, err, &want, wantErr, fast)
	return fast
}

// referenceMember is a record's event member as encoding/json reads it
// with UnmarshalStored's reference: how the store's record types read
// theirs.
type referenceMember struct{ ev *Event }

func (m *referenceMember) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	m.ev = &Event{}
	return unmarshalStoredReference(b, m.ev)
}

// sameRecordAsReference fails t unless UnmarshalStoredRecord reads data's
// event as encoding/json reads a record's event member, and reports
// whether the fast reading took it.
func sameRecordAsReference(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	var ref struct {
		Event referenceMember `json:"event"`
	}
	wantErr := json.Unmarshal(data, &ref)
	want := ref.Event.ev
	got, err := UnmarshalStoredRecord(data)
	_, fast = storedRecordFast(data)
	if err == nil && wantErr == nil && (got == nil || want == nil) {
		if got != want {
			t.Fatalf("%q: UnmarshalStoredRecord %#v, encoding/json %#v", data, got, want)
		}
		return fast
	}
	sameEvent(t, data, got, err, want, wantErr, fast)
	return fast
}

// sameEvent fails t unless got and err, read from data, are what
// encoding/json read (want, wantErr); fast says the fast reading took it,
// which it may not where encoding/json refuses.
func sameEvent(t *testing.T, data []byte, got *Event, err error, want *Event, wantErr error, fast bool) {
	t.Helper()
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, encoding/json's %v", data, err, wantErr)
	}
	if err != nil {
		if fast {
			t.Fatalf("%q: the fast reading took what encoding/json refuses (%v)", data, wantErr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nread          %#v\nencoding/json %#v", data, got, want)
	}
	// DeepEqual takes -0 for 0: the encodings tell them apart.
	g, _ := AppendJSON(nil, got)
	w, _ := AppendJSON(nil, want)
	if !bytes.Equal(g, w) {
		t.Fatalf("%q: read back as\n%s\nencoding/json's\n%s", data, g, w)
	}
}

// everyField is an event with every field set, so that a test over it
// fails for a field added to Event and not to the code it tests (teach
// is what to teach then); the on-demand answer is set only withAnswer.
func everyField(t testing.TB, withAnswer bool, teach string) *Event {
	t.Helper()
	ev := &Event{}
	v := reflect.ValueOf(ev).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Interface().(type) {
		case string:
			f.SetString("v-" + name)
		case int64:
			f.SetInt(int64(1000 + i))
		case float64:
			f.SetFloat(float64(i) + 0.25)
		case bool:
			f.SetBool(true)
		case map[string]string:
			f.Set(reflect.ValueOf(map[string]string{"b": "2", "a": "1"}))
		case map[string]any:
			f.Set(reflect.ValueOf(map[string]any{"z": int64(1), "a": []any{"x", 1.5, true, nil}, "m": map[string]any{}}))
		case time.Time:
			f.Set(reflect.ValueOf(time.Date(2026, 5, 1, 12, 0, 3, 123456789, time.UTC)))
		case Answer:
			if withAnswer {
				f.Set(reflect.ValueOf(Answer{NeedRecord: true, Formats: []string{"mp4"}, Interval: map[string]int64{"mp4": 900},
					Rule: "r", Default: true, Error: "e"}))
			}
		default:
			t.Fatalf("field %s: a type this test does not fill (%s): teach it, and %s", name, f.Type(), teach)
		}
	}
	return ev
}

// TestUnmarshalStoredEveryField stores an event with every field set but
// the answer (left to encoding/json: see TestUnmarshalStoredCases) and
// reads it back by the fast reading, so a field added to Event and not to
// storedField fails here.
func TestUnmarshalStoredEveryField(t *testing.T) {
	ev := everyField(t, false, "storedField")
	data, err := AppendJSON(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsReference(t, data) {
		t.Fatalf("the fast reading did not take an event as livehook writes it: %s", data)
	}
	var got Event
	if err := UnmarshalStored(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, ev) {
		t.Fatalf("read back\n%#v\nwritten\n%#v", &got, ev)
	}
}

func TestUnmarshalStoredCases(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		fast bool // the fast reading takes it
	}{
		{"recording callback", `{"id":"01J","source":"aliyun-record","kind":"file","domain":"d","app":"a","stream":"s","uri":"a/s/1.flv","format":"","duration":61.5,"start_time":1714564803,"stop_time":1714564865,"event":"","push_args":null,"received_at":"2026-05-01T12:00:03.5+08:00","payload":{"n":1234567,"f":0.5,"big":1e300,"l":[1,"x",null,true,{}]}}`, true},
		{"integral duration", `{"duration":61,"rate":0}`, true},
		{"negative zero duration", `{"duration":-0,"payload":{"z":-0}}`, false},
		{"negative zero in the payload only", `{"duration":0,"payload":{"z":-0}}`, false},
		{"zero duration of a status event", `{"event":"record_started","duration":0,"start_time":0,"received_at":"2026-05-01T12:00:03Z","payload":{"d":"2026-05-01","t":"-0"}}`, true},
		{"negative zero last", `{"rate":0,"width":-0}`, false},
		{"fraction for an integer", `{"start_time":1.0}`, false},
		{"exponent for an integer", `{"width":1e3}`, false},
		{"integer beyond int64", `{"time":9223372036854775808}`, false},
		{"float beyond float64", `{"payload":{"x":1e400}}`, false},
		{"nulls", `{"id":null,"duration":null,"push_args":null,"payload":null,"received_at":null,"reconciled":null}`, true},
		{"empty maps", `{"push_args":{},"payload":{}}`, true},
		{"push arg not a string", `{"push_args":{"a":1}}`, false},
		{"push arg null", `{"push_args":{"a":null}}`, false},
		{"string of another type", `{"stream":5}`, false},
		{"bool of another type", `{"reconciled":"yes"}`, false},
		{"payload not an object", `{"payload":[1]}`, false},
		{"key in another case", `{"ID":"x","Stream":"y"}`, false},
		{"unknown key", `{"extra":1}`, false},
		{"answer", `{"kind":"ondemand","answer":{"need_record":true,"formats":["mp4"],"interval":{"mp4":900}}}`, false},
		{"escaped strings", `{"stream":"a\"b\\c\u00e9\u2028","received_at":"2026-05-01T12:00:03Z"}`, false},
		{"escaped time", `{"received_at":"\u0032026-05-01T12:00:03Z"}`, false},
		{"time not RFC 3339", `{"received_at":"2026-05-01 12:00:03"}`, false},
		{"time of another type", `{"received_at":1714564803}`, false},
		{"duplicate key", `{"stream":"a","stream":"b"}`, false},
		{"trailing data", `{"stream":"a"} {"stream":"b"}`, false},
		{"not an object", `null`, false},
		{"bad UTF-8", "{\"stream\":\"\xff\"}", false},
		{"empty", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if fast := sameAsReference(t, []byte(tc.data)); fast != tc.fast {
				t.Errorf("fast reading took it: %v, want %v", fast, tc.fast)
			}
		})
	}
}

func FuzzUnmarshalStored(f *testing.F) {
	f.Add([]byte(`{"id":"01J","kind":"file","duration":61.5,"start_time":1714564803,"push_args":{"a":"1"},"received_at":"2026-05-01T12:00:03.123456789Z","payload":{"n":1,"f":-0.0,"l":[1e-7,"x"]}}`))
	f.Add([]byte(`{"duration":-0,"rate":1e21,"width":-1,"reconciled":true,"answer":{"need_record":false}}`))
	f.Add([]byte(`{"received_at":"2026-05-01T12:00:03+08:00","stream":"\u003clive\u003e"}`))
	ev := &Event{Duration: math.Copysign(0, -1), Payload: map[string]any{"x": []any{int64(1), 2.5}}, ReceivedAt: time.Unix(1714564803, 5)}
	if data, err := AppendJSON(nil, ev); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsReference(t, data) })
}

func TestUnmarshalStoredRecordCases(t *testing.T) {
	cb := `{"id":"01J","kind":"file","stream":"s","duration":61.5,"start_time":1714564803,"received_at":"2026-05-01T12:00:03.5+08:00","payload":{"n":1234567}}`
	for _, tc := range []struct {
		name string
		data string
		fast bool
	}{
		{"as the store writes it", `{"matched":["every-file"],"event":` + cb + `,"dedupe_key":"file|d|a|s|u"}`, true},
		{"event first", `{"event":` + cb + `,"matched":[]}`, true},
		{"no event", `{"matched":["r"]}`, true},
		{"null event", `{"event":null,"matched":["r"]}`, true},
		{"other members of any type", `{"matched":5,"replays":"x","event":` + cb + `}`, true},
		{"event in another case", `{"Event":` + cb + `}`, false},
		{"event in two cases", `{"event":{"stream":"a"},"EVENT":{"stream":"b"}}`, false},
		{"event not an object", `{"event":"x"}`, false},
		{"event the fast reading leaves", `{"event":{"duration":-0}}`, false},
		{"escape elsewhere in the record", `{"dedupe_key":"a\u0026b","event":{"received_at":"2026-05-01T12:00:03Z"}}`, false},
		{"duplicate member", `{"event":{"stream":"a"},"event":{"stream":"b"}}`, false},
		{"duplicate member, the first unreadable", `{"event":5,"event":{"stream":"b"}}`, false},
		{"not an object", `null`, false},
		{"array", `[1]`, false},
		{"invalid", `{"event":{"stream":"a"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if fast := sameRecordAsReference(t, []byte(tc.data)); fast != tc.fast {
				t.Errorf("fast reading took it: %v, want %v", fast, tc.fast)
			}
		})
	}
}

// TestStoredReadingsTakeTheFastPath checks that what the readings return
// for an event as livehook writes it comes from their one pass, not from
// encoding/json: the fast reading allocates less.
func TestStoredReadingsTakeTheFastPath(t *testing.T) {
	ev, err := DecodeRecord([]byte(`{"domain":"live.example.com","app":"live","stream":"room1","uri":"live/room1/1.flv","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`))
	if err != nil {
		t.Fatal(err)
	}
	ev.ID, ev.ReceivedAt = "01JQ4Z5Y6X7W8V9T0S1R2Q3P4N", time.Date(2026, 5, 1, 12, 0, 3, 0, time.UTC)
	data, err := AppendJSON(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	record := append(append([]byte(`{"matched":["every-file"],"event":`), data...), '}')
	var out Event
	for _, r := range []struct {
		name      string
		read, ref func()
	}{
		{"UnmarshalStored", func() { _ = UnmarshalStored(data, &out) }, func() { _ = unmarshalStoredReference(data, &out) }},
		{"UnmarshalStoredRecord", func() { _, _ = UnmarshalStoredRecord(record) }, func() {
			var rec struct {
				Event referenceMember `json:"event"`
			}
			_ = json.Unmarshal(record, &rec)
		}},
	} {
		if got, ref := testing.AllocsPerRun(10, r.read), testing.AllocsPerRun(10, r.ref); got >= ref {
			t.Errorf("%s: %v allocations, encoding/json's %v: not the one-pass reading", r.name, got, ref)
		}
	}
}

func FuzzUnmarshalStoredRecord(f *testing.F) {
	f.Add([]byte(`{"matched":["every-file"],"event":{"id":"01J","kind":"file","duration":61.5,"received_at":"2026-05-01T12:00:03Z","payload":{"n":1}},"dedupe_key":"k"}`))
	f.Add([]byte(`{"Event":{"stream":"a"},"event":null}`))
	f.Add([]byte(`{"event":{"duration":-0,"answer":{"need_record":true}}}`))
	f.Fuzz(func(t *testing.T, data []byte) { sameRecordAsReference(t, data) })
}

// BenchmarkUnmarshalStored is reading back a stored recording callback,
// as every claimed delivery does, by UnmarshalStored and, for
// comparison, by encoding/json.
//
//	go test -run '^$' -bench UnmarshalStored -benchmem ./engine/event/
func BenchmarkUnmarshalStored(b *testing.B) {
	ev, err := DecodeRecord([]byte(`{"domain":"live.example.com","app":"live","stream":"room1","uri":"live/room1/2026-05-01-12-00-03_2026-05-01-12-01-04.m3u8","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`))
	if err != nil {
		b.Fatal(err)
	}
	ev.ID, ev.ReceivedAt = "01JQ4Z5Y6X7W8V9T0S1R2Q3P4N", time.Now()
	data, err := AppendJSON(nil, ev)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct {
		name string
		read func([]byte, *Event) error
	}{{"UnmarshalStored", UnmarshalStored}, {"encoding_json", unmarshalStoredReference}} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var got Event
				if err := r.read(data, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
