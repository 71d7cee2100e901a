package aliyunstream_test

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/sourceapi"
	_ "github.com/livehook/livehook/sources/aliyunstream"
)

func descriptor(t *testing.T) *sourceapi.Source {
	t.Helper()
	s, name, ok := sourceapi.Default().Route("/callbacks/stream")
	if !ok || name != event.SourceStream || s.Name != event.SourceStream {
		t.Fatalf("/callbacks/stream routes to %v %q %v", s, name, ok)
	}
	return s
}

func fixture(t *testing.T, s *sourceapi.Source, file string) *sourceapi.Request {
	t.Helper()
	b, err := os.ReadFile("../../testdata/events/stream/" + file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.FromFile(s.Name, b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDescriptor(t *testing.T) {
	s := descriptor(t)
	if !s.Allows(http.MethodGet) || s.Allows(http.MethodPost) || s.MetricLabel() != event.SourceStream {
		t.Errorf("methods %v, label %q", s.Methods, s.MetricLabel())
	}
	if want := auth.NewAliyun([]secret.Secret{secret.New("k")}, "h", time.Minute).Method(); s.Auth != want {
		t.Errorf("auth %q, want Aliyun's signature %q", s.Auth, want)
	}
	r := fixture(t, s, "publish.json")
	if len(r.Body) != 0 || r.Query.Get("action") != "publish" || r.Query.Get("height") != "720" {
		t.Errorf("the fixture is sent as %+v; want its parameters as the query and no body", r)
	}
	ev, err := s.Decode(r)
	if err != nil || ev.Kind != event.KindStream || ev.Stream != "world" || ev.IngestDomain != "example.aliyundoc.com" || ev.Height != 720 {
		t.Errorf("the docs' publish callback: %+v, %v", ev, err)
	}
}

func TestFixtureRefusesWhatIsNoQuery(t *testing.T) {
	s := descriptor(t)
	for _, file := range []string{`[]`, `null`, `{"a":{}}`, `{"a":[1]}`, `{"a":true}`, `{"a":"1"} {}`, `action=publish`} {
		if r, err := s.FromFile(s.Name, []byte(file)); err == nil {
			t.Errorf("fixture %s: %+v, want an error", file, r)
		}
	}
	r, err := s.FromFile(s.Name, []byte(`{"action":"publish","time":1609220385,"width":1280.0}`))
	if err != nil || r.Query.Get("time") != "1609220385" || r.Query.Get("width") != "1280.0" {
		t.Errorf("numbers are sent as written: %+v, %v", r, err)
	}
}

// TestRetriesAreTold: a retry repeats the query and ALI-LIVE-TIMESTAMP, in
// any order of parameters; another publish of the stream has another time.
func TestRetriesAreTold(t *testing.T) {
	s := descriptor(t)
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	key := func(r *sourceapi.Request, ts string) string {
		r.Header = http.Header{}
		if ts != "" {
			r.Header.Set(auth.HeaderAliTimestamp, ts)
		}
		ev, err := s.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.DedupeWindow(ev, w); got != w.Status {
			t.Errorf("window %v, want the status window", got)
		}
		return s.DedupeKey(r, ev)
	}
	first := key(fixture(t, s, "publish.json"), "1609220386")
	if !strings.HasPrefix(first, event.SourceStream+"\x00") || !strings.HasSuffix(first, "\x001609220386") {
		t.Errorf("key %q", first)
	}
	if again := key(fixture(t, s, "publish.json"), "1609220386"); again != first {
		t.Errorf("a retry: %q, want %q", again, first)
	}
	later := fixture(t, s, "publish.json")
	later.Query.Set("time", "1609220999")
	for name, k := range map[string]string{
		"the stream published again": key(later, "1609220999"),
		"its interruption":           key(fixture(t, s, "publish_done.json"), "1609220386"),
		"the same, signed later":     key(fixture(t, s, "publish.json"), "1609220400"),
		"the same, unsigned":         key(fixture(t, s, "publish.json"), ""),
	} {
		if k == first {
			t.Errorf("%s has the first callback's key", name)
		}
	}
}

// TestSignedOverTheIngestDomain: Aliyun signs a stream callback over the
// ingest domain it is configured on, so that is the verifier's host; the
// host of the callback URL does not verify.
func TestSignedOverTheIngestDomain(t *testing.T) {
	key := secret.New("yourkey0123456789")
	v := auth.NewAliyun([]secret.Secret{key}, "example.aliyundoc.com", 5*time.Minute)
	now := time.Unix(1609220386, 0)
	ts := "1609220385"
	for _, tt := range []struct {
		host string
		ok   bool
	}{
		{"example.aliyundoc.com", true},  // the ingest domain, app in the query
		{"hooks.example.com", false},     // the callback URL's host
		{"EXAMPLE.aliyundoc.com", false}, // signed over other bytes
	} {
		h := http.Header{}
		h.Set(auth.HeaderAliTimestamp, ts)
		h.Set(auth.HeaderAliSignature, auth.AliyunSignature(tt.host, ts, key.Reveal()))
		if err := v.Verify(h, nil, now); (err == nil) != tt.ok {
			t.Errorf("signed over %s: %v, want ok=%v", tt.host, err, tt.ok)
		}
	}
}
