package intake_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/livehook/livehook/internal/intake"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkServeAccept is intake's own work on one accepted recording
// callback: route, read, decode and answer, the acceptor doing nothing.
//
//	go test -run '^$' -bench ServeAccept -benchmem ./internal/intake/
func BenchmarkServeAccept(b *testing.B) {
	h := intake.New(intake.Options{Acceptor: idAcceptor("01JE4ZK8R5N0Q9V6W2X3Y4Z5A6"), Logger: slog.New(slog.DiscardHandler)})
	body := []byte(`{"domain":"live.example.com","app":"live","stream":"room1","uri":"live/room1/12345.flv","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`)
	req, err := http.NewRequest(http.MethodPost, "http://livehook/callbacks/record", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.RemoteAddr, req.ContentLength = "192.0.2.7:40000", int64(len(body)) // as the server sets them
	rd := bytes.NewReader(body)
	req.Body = io.NopCloser(rd)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		h.ServeHTTP(w, req)
	}
}
