package aliyunrecord_test

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/sourceapi"
	_ "github.com/livehook/livehook/sources/aliyunrecord"
)

func descriptor(t *testing.T) *sourceapi.Source {
	t.Helper()
	s, name, ok := sourceapi.Default().Route("/callbacks/record")
	if !ok || name != event.SourceRecord || s.Name != event.SourceRecord {
		t.Fatalf("/callbacks/record routes to %v %q %v", s, name, ok)
	}
	return s
}

func decode(t *testing.T, s *sourceapi.Source, body string, header http.Header) (*sourceapi.Request, *event.Event) {
	t.Helper()
	r := &sourceapi.Request{Name: s.Name, Header: header, Body: []byte(body)}
	ev, err := s.Decode(r)
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return r, ev
}

// TestRetriesAreTold: the identities are the ones the dedupe index already
// holds, so a retry that straddles an upgrade is still known.
func TestRetriesAreTold(t *testing.T) {
	s := descriptor(t)
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	signed := http.Header{}
	signed.Set(auth.HeaderAliTimestamp, "1714564803")
	for _, tt := range []struct {
		name   string
		body   string
		header http.Header
		key    string
		window time.Duration
	}{
		{"file event: its recording", `{"domain":"d","app":"a","stream":"s","uri":"record/a/s/1.flv","duration":1}`, nil,
			"file\x00d\x00a\x00s\x00record/a/s/1.flv", w.File},
		{"status event, signed: body and timestamp", `{"domain":"d","app":"a","stream":"s","event":"record_paused"}`, signed,
			"status\x00e49799924ca1c7f2f3d1421a5ef9a1ef40a096c0384ed82545e2bb5672ab0209\x001714564803", w.Status},
		{"status event, unsigned: its body", `{"domain":"d","app":"a","stream":"s","event":"record_paused"}`, http.Header{},
			"status\x00e49799924ca1c7f2f3d1421a5ef9a1ef40a096c0384ed82545e2bb5672ab0209\x00", w.Status},
		{"neither file nor status", `{"domain":"d","app":"a","stream":"s"}`, http.Header{},
			"unknown\x006ebc438a302daa4d29e2c6dbe219bf7c7b006bc82a4314a100badd43f98b13bd\x00", w.Status},
	} {
		r, ev := decode(t, s, tt.body, tt.header)
		if got := s.DedupeKey(r, ev); got != tt.key {
			t.Errorf("%s: key %q, want %q", tt.name, got, tt.key)
		}
		if got := s.DedupeWindow(ev, w); got != tt.window {
			t.Errorf("%s: window %v, want %v", tt.name, got, tt.window)
		}
	}
}

func TestDescriptor(t *testing.T) {
	s := descriptor(t)
	if got := s.MetricLabel(); got != event.SourceRecord {
		t.Errorf("metric label %q, want %q", got, event.SourceRecord)
	}
	if want := auth.NewAliyun([]secret.Secret{secret.New("k")}, "h", time.Minute).Method(); s.Auth != want {
		t.Errorf("auth %q, want Aliyun's signature %q", s.Auth, want)
	}
	if !s.Allows(http.MethodPost) || s.Allows(http.MethodGet) {
		t.Errorf("methods %v, want POST only", s.Methods)
	}
	file, err := os.ReadFile("../../testdata/events/file_flv.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.FromFile(s.Name, file)
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := s.Decode(r); err != nil || ev.Source != event.SourceRecord || ev.Kind != event.KindFile || ev.Format != "flv" {
		t.Errorf("example file callback: %+v, %v", ev, err)
	}
}
