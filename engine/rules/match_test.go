package rules_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

func loadString(t *testing.T, src string) *rules.Set {
	t.Helper()
	set, err := rules.Load(writeRules(t, src), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatalf("load:\n%v", err)
	}
	t.Cleanup(set.Retire)
	return set
}

func TestMatch(t *testing.T) {
	set := loadString(t, `rules:
  - name: every-event          # no when: matches everything
    do: [{type: log}]
  - name: errors
    when: event == "record_error"
    do: [{type: log}]
  - name: short-stop
    when: kind == "file" && duration < 10
    stop: true
    do: [{type: log}]
  - name: files
    when: kind == "file"
    do: [{type: log}]
  - name: disabled
    enabled: false
    do: [{type: log}]
  - name: vip
    when: push_args.callback_orderid startsWith "VIP"
    do: [{type: log}]
  - name: error-code
    when: payload.error_info?.code == "BucketNotFound"
    do: [{type: log}]
`)
	tests := []struct {
		name string
		ev   event.Event
		want []string
	}{
		{"status event", event.Event{Kind: event.KindStatus, Event: "record_error"}, []string{"every-event", "errors"}},
		{"long file", event.Event{Kind: event.KindFile, Duration: 60}, []string{"every-event", "files"}},
		{"short file stops after its rule", event.Event{Kind: event.KindFile, Duration: 3, PushArgs: map[string]string{"callback_orderid": "VIP-1"}}, []string{"every-event", "short-stop"}},
		{"push_args", event.Event{Kind: event.KindFile, Duration: 60, PushArgs: map[string]string{"callback_orderid": "VIP-1"}}, []string{"every-event", "files", "vip"}},
		{"no push_args", event.Event{Kind: event.KindStatus, Event: "record_paused"}, []string{"every-event"}},
		{"payload path", event.Event{Kind: event.KindStatus, Event: "record_error", Payload: map[string]any{"error_info": map[string]any{"code": "BucketNotFound"}}},
			[]string{"every-event", "errors", "error-code"}},
	}
	var m rules.Matcher
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			matched, errs := m.Match(set, &tt.ev)
			if len(errs) != 0 {
				t.Errorf("eval errors: %v", errs)
			}
			var got []string
			for _, r := range matched {
				got = append(got, r.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
		})
	}
}

// A condition that fails at run time is an error for that rule only: it
// counts as no match and the rules after it still run.
func TestMatchEvalError(t *testing.T) {
	set := loadString(t, `rules:
  - name: big-x
    when: payload.x > 3
    stop: true
    do: [{type: log}]
  - name: after
    do: [{type: log}]
`)
	var m rules.Matcher
	tests := []struct {
		name    string
		payload map[string]any
		want    []string
		errs    int
	}{
		{"number", map[string]any{"x": int64(5)}, []string{"big-x"}, 0},
		{"small number", map[string]any{"x": 1.5}, []string{"after"}, 0},
		{"string", map[string]any{"x": "five"}, []string{"after"}, 1},
		{"missing", map[string]any{}, []string{"after"}, 1},
		{"no payload", nil, []string{"after"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			matched, errs := m.Match(set, &event.Event{Payload: tt.payload})
			var got []string
			for _, r := range matched {
				got = append(got, r.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
			if len(errs) != tt.errs {
				t.Fatalf("errs = %v, want %d", errs, tt.errs)
			}
			for _, e := range errs {
				var ee *rules.EvalError
				if !errors.As(e, &ee) || ee.Rule.Name != "big-x" || ee.Err == nil {
					t.Errorf("eval error %+v", e)
				}
				if !strings.HasPrefix(e.Error(), `rule "big-x": when: `) {
					t.Errorf("message %q", e.Error())
				}
			}
		})
	}
}

// TestExampleRules runs the shipped example against every captured
// callback: the tour in rules.example.yaml must do what its comments say.
func TestExampleRules(t *testing.T) {
	set, err := rules.Load("../../rules.example.yaml", options(actionapi.Default(), nil))
	if err != nil {
		t.Fatalf("rules.example.yaml:\n%v", err)
	}
	defer set.Retire()
	tests := []struct {
		file string
		want []string
		text string // part of the first step's rendered message
	}{
		{"file_flv.json", []string{"flv-ready"}, "new recording live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv: 69s, 54s wall clock"},
		{"file_short_m3u8.json", []string{"short-recording"}, "short file record/live/room42/"},
		{"record_error.json", []string{"recording-failed"}, "recording failed: gs_domain/gs_app/gs_stream"},
		{"record_error_detail.json", []string{"recording-failed"}, "recording failed: play.example.com/live/room42 (BucketNotFound: Bucket not found)"},
		{"record_paused.json", []string{"recording-paused"}, "gs_stream: paused"},
		{"record_resumed.json", []string{"recording-paused"}, "gs_stream: resumed"},
		{"record_started.json", nil, ""},
	}
	var m rules.Matcher
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("../../testdata/events", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := event.DecodeRecord(body)
			if err != nil {
				t.Fatal(err)
			}
			matched, errs := m.Match(set, ev)
			if len(errs) != 0 {
				t.Errorf("eval errors: %v", errs)
			}
			var got []string
			for _, r := range matched {
				got = append(got, r.Name)
				for _, s := range r.Steps {
					plan, err := s.Step.Plan(actionapi.Input{Event: ev, Rule: r.Name, DeliveryID: "d1"})
					if err != nil {
						t.Errorf("rule %s step %d: %v", r.Name, s.Index, err)
						continue
					}
					msg, _ := plan.Body.(string)
					if strings.Contains(msg, "<no value>") {
						t.Errorf("rule %s renders a gap: %q", r.Name, msg)
					}
					if s.Index == 0 && r.Name == tt.want[0] && !strings.Contains(msg, tt.text) {
						t.Errorf("rule %s renders %q, want %q in it", r.Name, msg, tt.text)
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
		})
	}
}
