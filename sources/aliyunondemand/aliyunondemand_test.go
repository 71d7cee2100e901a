package aliyunondemand_test

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/sources/aliyunondemand"
)

func descriptor(t *testing.T) *sourceapi.Source {
	t.Helper()
	s, name, ok := sourceapi.Default().Route("/callbacks/ondemand")
	if !ok || name != event.SourceOnDemand || s.Name != event.SourceOnDemand {
		t.Fatalf("/callbacks/ondemand routes to %v %q %v", s, name, ok)
	}
	return s
}

func fixture(t *testing.T, s *sourceapi.Source, file string) *sourceapi.Request {
	t.Helper()
	b, err := os.ReadFile("../../testdata/events/ondemand/" + file)
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
	if !s.Allows(http.MethodGet) || s.Allows(http.MethodPost) || s.MetricLabel() != event.SourceOnDemand {
		t.Errorf("methods %v, label %q", s.Methods, s.MetricLabel())
	}
	if want := auth.NewAliyun([]secret.Secret{secret.New("k")}, "h", time.Minute).Method(); s.Auth != want {
		t.Errorf("auth %q, want Aliyun's signature %q", s.Auth, want)
	}
	r := fixture(t, s, "request.json")
	if len(r.Body) != 0 || r.Query.Get("stream") != "ondemand8" || r.Query.Get("vbitrate") != "2000" {
		t.Errorf("the fixture is sent as %+v; want its parameters as the query and no body", r)
	}
	ev, err := s.Decode(r)
	if err != nil || ev.Kind != event.KindOnDemand || ev.Domain != "demo.aliyundoc.com" || ev.VBitrate != 2000 {
		t.Errorf("the docs' question: %+v, %v", ev, err)
	}
}

// TestRetriesAreTold: a retry repeats the query, in any order, and
// ALI-LIVE-TIMESTAMP; another stream, or the same one asked about later
// (a new timestamp), is another question.
func TestRetriesAreTold(t *testing.T) {
	s := descriptor(t)
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	key := func(r *sourceapi.Request, ts string) string {
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
	first := key(fixture(t, s, "request.json"), "1519375990")
	if !strings.HasPrefix(first, event.SourceOnDemand+"\x00") || !strings.HasSuffix(first, "\x001519375990") {
		t.Errorf("key %q", first)
	}
	if again := key(fixture(t, s, "request.json"), "1519375990"); again != first {
		t.Errorf("a retry: %q, want %q", again, first)
	}
	other := fixture(t, s, "request.json")
	other.Query.Set("stream", "ondemand9")
	for name, k := range map[string]string{
		"another stream":     key(other, "1519375990"),
		"asked again later":  key(fixture(t, s, "request.json"), "1519376990"),
		"the same, unsigned": key(fixture(t, s, "request.json"), ""),
	} {
		if k == first {
			t.Errorf("%s has the first question's key", name)
		}
	}
}

// TestReplyIsLiveFormat: the docs' two example answers, from livehook's
// answers: a stream to record with formats and cycles, and one not to
// record. Each fits the 2048 bytes Live reads.
func TestReplyIsLiveFormat(t *testing.T) {
	tests := []struct {
		name   string
		answer event.Answer
		want   string
	}{
		{"record, with formats and cycles", event.Answer{NeedRecord: true, Formats: []string{"mp4", "flv"},
			Interval: map[string]int64{"mp4": 300, "flv": 120, "m3u8": 180}, Rule: "r"},
			`{"ApiVersion":"1.0","NeedRecord":true,"Interval":{"Mp4":300,"Flv":120,"M3U8":180},"Format":["mp4","flv"]}`},
		{"do not record", event.Answer{Default: true}, `{"ApiVersion":"1.0","NeedRecord":false}`},
		{"record as configured", event.Answer{NeedRecord: true, Rule: "r"}, `{"ApiVersion":"1.0","NeedRecord":true}`},
		{"not recording ignores formats", event.Answer{Formats: []string{"mp4"}, Error: "x"}, `{"ApiVersion":"1.0","NeedRecord":false}`},
	}
	s := descriptor(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(s.Answer(&event.Event{Answer: tt.answer}, "01J0000000000000000000000"))
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("reply %s, want %s", body, tt.want)
			}
			if len(body) > 2048 {
				t.Errorf("reply is %d bytes: Live cuts it at 2048", len(body))
			}
		})
	}
	if b, _ := json.Marshal(aliyunondemand.Reply(event.Answer{NeedRecord: true, Formats: []string{}})); strings.Contains(string(b), `"Format"`) {
		t.Errorf("an empty format list is sent (%s): Live would record nothing", b)
	}
}

// TestSignedOverTheCallbackHost: Live's key for on-demand recording is the
// recording callbacks' own, signed over the host of the callback URL.
func TestSignedOverTheCallbackHost(t *testing.T) {
	key := secret.New("yourkey0123456789")
	v := auth.NewAliyun([]secret.Secret{key}, "learn.aliyundoc.com", 5*time.Minute)
	now := time.Unix(1519375990, 0)
	ts := "1519375990"
	for _, tt := range []struct {
		host string
		ok   bool
	}{
		{"learn.aliyundoc.com", true}, // OnDemandUrl http://learn.aliyundoc.com/ondemandcallback.action
		{"demo.aliyundoc.com", false}, // the streaming domain in the query
	} {
		h := http.Header{}
		h.Set(auth.HeaderAliTimestamp, ts)
		h.Set(auth.HeaderAliSignature, auth.AliyunSignature(tt.host, ts, key.Reveal()))
		if err := v.Verify(h, nil, now); (err == nil) != tt.ok {
			t.Errorf("signed over %s: %v, want ok=%v", tt.host, err, tt.ok)
		}
	}
}
