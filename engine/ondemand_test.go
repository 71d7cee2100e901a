package engine

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

const recordVIP = `
rules:
  - name: vip
    when: stream startsWith "vip"
    answer: { need_record: true, formats: [mp4], interval: { mp4: 1800 } }
  - name: picky
    when: stream == "odd" && payload.level > 3
    answer: { need_record: true }
`

// onDemandEngine is an engine on rulesYAML; started, it evaluates what it
// accepts, else accepted events stay unevaluated.
func onDemandEngine(t *testing.T, rulesYAML string, start bool) (*Engine, *prometheus.Registry, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rec := &recorder{deliveries: make(chan actionapi.Input, 10)}
	e, err := New(Options{RulesPath: path, Store: st, Metrics: reg, Logger: slog.New(slog.DiscardHandler),
		Registry: func() (*actionapi.Registry, error) { return rec.registry(t), nil }})
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = e.Stop(context.Background())
		st.Close()
	})
	return e, reg, path
}

// ask accepts an on-demand question about stream, as intake would, and
// returns its id and the answer the reply renders.
func ask(t *testing.T, e *Engine, stream, dedupeKey string) (string, event.Answer) {
	t.Helper()
	ev := &event.Event{Source: event.SourceOnDemand, Kind: event.KindOnDemand, Domain: "play.example.com", App: "live",
		Stream: stream, Codec: "h264", VBitrate: 2000, Payload: map[string]any{"stream": stream, "level": "high"}}
	id, err := e.Accept(context.Background(), ev, dedupeKey)
	if err != nil {
		t.Fatal(err)
	}
	return id, ev.Answer
}

// TestOnDemandAnsweredAndKept: the answer is decided before Accept
// returns, and the stored event holds it.
func TestOnDemandAnsweredAndKept(t *testing.T) {
	e, _, _ := onDemandEngine(t, recordVIP, true)
	id, got := ask(t, e, "vip-1", "q1")
	if !got.NeedRecord || got.Rule != "vip" || got.Interval["mp4"] != 1800 {
		t.Fatalf("answer %+v, want the vip rule's", got)
	}
	_, other := ask(t, e, "room", "q2")
	if other.NeedRecord || !other.Default {
		t.Errorf("answer %+v, want the default: not recording", other)
	}
	drained(t, e)
	d, err := e.Event(id)
	if err != nil {
		t.Fatal(err)
	}
	if a := d.Event.Answer; !a.NeedRecord || a.Rule != "vip" || len(a.Formats) != 1 || a.Formats[0] != "mp4" {
		t.Errorf("stored answer %+v", a)
	}
}

// TestRetriedQuestionGetsTheFirstAnswer: a retry is answered what the
// first copy was, read back from the store, even after a reload that
// would answer differently.
func TestRetriedQuestionGetsTheFirstAnswer(t *testing.T) {
	e, _, path := onDemandEngine(t, recordVIP, true)
	id, first := ask(t, e, "vip-1", "q1")
	drained(t, e)
	if err := os.WriteFile(path, []byte("rules:\n  - name: none\n    answer: { need_record: false }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	retryID, again := ask(t, e, "vip-1", "q1")
	if retryID != id || again.Rule != first.Rule || again.NeedRecord != first.NeedRecord {
		t.Errorf("retry: %s %+v; want the first copy's %s %+v", retryID, again, id, first)
	}
	if _, fresh := ask(t, e, "vip-1", "q2"); fresh.NeedRecord || fresh.Rule != "none" {
		t.Errorf("a new question: %+v, want the new rules' answer", fresh)
	}
}

// TestRetryBeforeEvaluationDecidesAgain: until the first copy is
// evaluated the store cannot give its answer; the same rules decide the
// same again.
func TestRetryBeforeEvaluationDecidesAgain(t *testing.T) {
	e, _, _ := onDemandEngine(t, recordVIP, false)
	id, first := ask(t, e, "vip-1", "q1")
	retryID, again := ask(t, e, "vip-1", "q1")
	if retryID != id || again.Rule != "vip" || !again.NeedRecord || again.Interval["mp4"] != first.Interval["mp4"] {
		t.Errorf("retry: %s %+v; want %s %+v", retryID, again, id, first)
	}
}

// TestAnswerRuleErrorIsCounted: a condition that fails answers the
// default and counts as the rule's evaluation error.
func TestAnswerRuleErrorIsCounted(t *testing.T) {
	e, _, _ := onDemandEngine(t, recordVIP, true)
	_, got := ask(t, e, "odd", "q1")
	if got.NeedRecord || !got.Default || got.Error == "" {
		t.Errorf("answer %+v, want the default with the error", got)
	}
	if n := testutil.ToFloat64(e.metrics.ruleErrors.WithLabelValues("picky")); n != 1 {
		t.Errorf("livehook_rule_evaluation_errors_total{rule=picky} = %v, want 1", n)
	}
}

// TestOtherEventsAskNothing: no other event gets an answer.
func TestOtherEventsAskNothing(t *testing.T) {
	e, _, _ := onDemandEngine(t, "rules:\n  - name: all\n    answer: { need_record: true }\n", true)
	ev := &event.Event{Source: event.SourceRecord, Kind: event.KindFile, Domain: "d", App: "a", Stream: "s", URI: "u.flv",
		ReceivedAt: time.Now()}
	if _, err := e.Accept(context.Background(), ev, ""); err != nil {
		t.Fatal(err)
	}
	if ev.Answer.NeedRecord || ev.Answer.Rule != "" || ev.Answer.Default {
		t.Errorf("a recording callback got an answer: %+v", ev.Answer)
	}
}
