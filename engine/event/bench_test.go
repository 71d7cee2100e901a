package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
)

// BenchmarkDecodeRecord is the decoding of one recording callback, as
// intake does it for every POST /callbacks/record: the body the accept
// benchmarks send, and a sample with numeric strings and push_args.
//
//	go test -run '^$' -bench DecodeRecord -benchmem ./engine/event/
func BenchmarkDecodeRecord(b *testing.B) {
	for _, bb := range []struct{ name, body string }{
		{"file", `{"domain":"live.example.com","app":"live","stream":"room1","uri":"live/room1/12345.flv","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`},
		{"sample", string(readEvent(b, "file_short_m3u8.json"))},
	} {
		body := []byte(bb.body)
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := event.DecodeRecord(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncode is the encoding of a decoded recording callback for the
// journal, by AppendJSON and, for comparison, by json.Marshal.
//
//	go test -run '^$' -bench Encode -benchmem ./engine/event/
func BenchmarkEncode(b *testing.B) {
	ev, err := event.DecodeRecord(readEvent(b, "file_short_m3u8.json"))
	if err != nil {
		b.Fatal(err)
	}
	ev.ID, ev.Source, ev.ReceivedAt = "01JQ4Z5Y6X7W8V9T0S1R2Q3P4N", event.SourceRecord, time.Now()
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			if _, err := event.AppendJSON(buf[:0], ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
