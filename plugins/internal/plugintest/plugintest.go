// Package plugintest helps tests run real plugins: build the repository's
// plugins into a temporary plugins folder, load rules that use them, and
// deliver an event through a rule's steps as the engine would.
package plugintest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/plugins/internal/buildplugin"
	"github.com/livehook/livehook/plugins/provider"
)

// Main builds the named plugins of this repository into a temporary
// plugins folder, sets *dir to it, runs the tests and removes the folder.
// Call it from TestMain: one build serves every test.
func Main(m *testing.M, dir *string, names ...string) {
	os.Exit(buildAndRun(m, dir, names))
}

func buildAndRun(m *testing.M, dir *string, names []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "livehook-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	root, err := buildplugin.ModuleRoot(ctx)
	if err == nil {
		err = buildplugin.Build(ctx, root, tmp, names, io.Discard)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*dir = tmp
	return m.Run()
}

// Log collects log records as JSON lines, safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Logger returns a debug-level JSON logger writing to l.
func (l *Log) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Load writes src as a rules file and loads it with the built-in types in
// base plus the plugins in pluginsDir. It returns the set, or the load's
// error; the set is retired when the test ends.
func Load(t testing.TB, pluginsDir string, base *actionapi.Registry, src string, logger *slog.Logger) (*rules.Set, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := provider.Registry(provider.Options{Dir: pluginsDir, Base: base})
	if err != nil {
		return nil, err
	}
	set, err := rules.Load(path, rules.Options{Registry: reg,
		Deps: actionapi.Deps{Logger: logger, HTTP: actionapi.NewHTTP(nil), Now: time.Now}})
	if err != nil {
		return nil, err
	}
	t.Cleanup(set.Retire)
	return set, nil
}

// Deliver plans and runs the first step of the named rule for ev, as the
// engine does, and returns the plan and the result.
func Deliver(t testing.TB, set *rules.Set, rule string, ev *event.Event) (actionapi.Plan, actionapi.Result) {
	t.Helper()
	for _, r := range set.Rules {
		if r.Name != rule {
			continue
		}
		s := r.Steps[0]
		plan, err := s.Step.Plan(actionapi.Input{Event: ev, Rule: r.Name, DeliveryID: ev.ID + "." + r.Name + ".0"})
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		return plan, s.Step.Do(context.Background(), plan)
	}
	t.Fatalf("no rule %q", rule)
	return actionapi.Plan{}, actionapi.Result{}
}

// Event returns a recording-error event for stream.
func Event(id, stream string) *event.Event {
	return &event.Event{ID: id, Source: event.SourceRecord, Kind: event.KindStatus, Domain: "play.example.com",
		App: "live", Stream: stream, Event: "record_error", ReceivedAt: time.Now().UTC()}
}
