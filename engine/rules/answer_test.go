package rules_test

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

const answerRules = `
sources:
  aliyun_live_ondemand:
    default_answer: { need_record: true, formats: [flv] }
rules:
  - name: off
    enabled: false
    when: stream == "vip"
    answer: { need_record: false }
  - name: vip
    when: stream == "vip"
    answer: { need_record: true, formats: [MP4, m3u8], interval: { mp4: 1800, M3U8: 600 } }
  - name: low-bitrate
    description: answers, and logs that it did
    when: vbitrate < 500
    answer: { need_record: false }
    do: [ { type: log } ]
  - name: broken
    when: stream == "broken" && payload.level > 3
    answer: { need_record: true }
  - name: everything-h265
    when: codec == "h265"
    answer: { need_record: true }
`

func onDemand(stream, codec string, kbps int64) *event.Event {
	return &event.Event{Source: event.SourceOnDemand, Kind: event.KindOnDemand, Domain: "play.example.com", App: "live",
		Stream: stream, Codec: codec, VBitrate: kbps, Payload: map[string]any{"level": "high"}}
}

// TestAnswerFirstRuleThatHolds: answer rules are tried in order, the first
// enabled one that holds decides, and the source's default_answer answers
// when none does.
func TestAnswerFirstRuleThatHolds(t *testing.T) {
	set, err := rules.Load(writeRules(t, answerRules), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	tests := []struct {
		name string
		ev   *event.Event
		want event.Answer
	}{
		{"the first enabled rule", onDemand("vip", "h265", 100), event.Answer{NeedRecord: true, Formats: []string{"mp4", "m3u8"},
			Interval: map[string]int64{"mp4": 1800, "m3u8": 600}, Rule: "vip"}},
		{"a rule with steps answers too", onDemand("room1", "h265", 100), event.Answer{Rule: "low-bitrate"}},
		{"a later rule", onDemand("room1", "h265", 2000), event.Answer{NeedRecord: true, Rule: "everything-h265"}},
		{"none: the default_answer", onDemand("room1", "h264", 2000), event.Answer{NeedRecord: true, Formats: []string{"flv"}, Default: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, asks, err := set.Answer(tt.ev)
			if !asks || err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Answer = %+v, %v, %v; want %+v", got, asks, err, tt.want)
			}
		})
	}
}

// TestAnswerFallsBackOnError: a condition that fails at run time answers
// the default, saying why, and the search stops there: a later rule does
// not answer in the failed one's place.
func TestAnswerFallsBackOnError(t *testing.T) {
	set, err := rules.Load(writeRules(t, answerRules), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	got, asks, evalErr := set.Answer(onDemand("broken", "h265", 2000))
	if !asks || evalErr == nil || evalErr.Rule.Name != "broken" {
		t.Fatalf("Answer = %+v, %v, %v; want the broken rule's error", got, asks, evalErr)
	}
	if !got.Default || !got.NeedRecord || !slices.Equal(got.Formats, []string{"flv"}) || got.Rule != "" ||
		!strings.Contains(got.Error, `rule "broken": when:`) {
		t.Errorf("answer %+v, want the default answer with the error", got)
	}
}

// TestAnswerOnlyForOnDemand: events of other sources ask nothing, and
// without any entry or rule the answer is not to record.
func TestAnswerOnlyForOnDemand(t *testing.T) {
	set, err := rules.Load(writeRules(t, "rules:\n  - name: all\n    answer: { need_record: true }\n"), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	for _, src := range []string{event.SourceRecord, event.SourceStream, "cams"} {
		if a, asks, err := set.Answer(&event.Event{Source: src, Stream: "s"}); asks || err != nil || !reflect.DeepEqual(a, event.Answer{}) {
			t.Errorf("%s: Answer = %+v, %v, %v; want no question", src, a, asks, err)
		}
	}
	plain, err := rules.Load(writeRules(t, "rules:\n  - name: r\n    do: [ { type: log } ]\n"), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Retire()
	if a, asks, err := plain.Answer(onDemand("s", "h264", 1)); !asks || err != nil || !reflect.DeepEqual(a, event.Answer{Default: true}) {
		t.Errorf("no answer rules: %+v, %v, %v; want the default, not recording", a, asks, err)
	}
}

// TestAnswerIsACopy: an event's answer is its own; changing it leaves the
// rule's, which every later event gets, as loaded.
func TestAnswerIsACopy(t *testing.T) {
	set, err := rules.Load(writeRules(t, answerRules), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	a, _, _ := set.Answer(onDemand("vip", "h264", 2000))
	a.Formats[0], a.Interval["mp4"] = "flv", 5
	b, _, _ := set.Answer(onDemand("vip", "h264", 2000))
	if b.Formats[0] != "mp4" || b.Interval["mp4"] != 1800 {
		t.Errorf("a changed answer changed the rule's: %+v", b)
	}
}

// TestMatchLeavesAnswerOnlyRules: a rule with nothing to do is not a match
// of the evaluator; a rule that answers and has steps is.
func TestMatchLeavesAnswerOnlyRules(t *testing.T) {
	set, err := rules.Load(writeRules(t, answerRules), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	var m rules.Matcher
	matched, errs := m.Match(set, onDemand("vip", "h265", 100))
	var names []string
	for _, r := range matched {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"low-bitrate"}) || len(errs) != 0 {
		t.Errorf("matched %v (errors %v), want only the answer rule with steps", names, errs)
	}
}

// TestAnswerConcurrently: answers are decided on the request path, by
// many requests at once (run with -race).
func TestAnswerConcurrently(t *testing.T) {
	set, err := rules.Load(writeRules(t, answerRules), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				stream := []string{"vip", "room", "broken"}[i%3]
				if _, asks, _ := set.Answer(onDemand(stream, "h265", int64(i*100))); !asks {
					t.Error("no answer")
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestExampleAnswers: the example rules answer the fixtures' questions as
// their comments say.
func TestExampleAnswers(t *testing.T) {
	set, err := rules.Load("../../rules.example.yaml", options(actionapi.Default(), nil))
	if err != nil {
		t.Fatalf("rules.example.yaml:\n%v", err)
	}
	defer set.Retire()
	for file, want := range map[string]event.Answer{
		"rec_stream.json": {NeedRecord: true, Formats: []string{"mp4"}, Interval: map[string]int64{"mp4": 1800}, Rule: "record-on-request"},
		"request.json":    {Default: true},
		"guide.json":      {Default: true},
	} {
		b, err := os.ReadFile(filepath.Join("../../testdata/events/ondemand", file))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.DecodeOnDemand(queryOfFile(t, b))
		if err != nil {
			t.Fatal(err)
		}
		if got, _, err := set.Answer(ev); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: answer %+v, %v; want %+v", file, got, err, want)
		}
	}
}

// queryOfFile reads an on-demand fixture, a JSON object of the query's
// parameters.
func queryOfFile(t *testing.T, b []byte) url.Values {
	t.Helper()
	var params map[string]string
	if err := json.Unmarshal(b, &params); err != nil {
		t.Fatal(err)
	}
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	return q
}
