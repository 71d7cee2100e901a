//go:build unix

package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/plugins/internal/plugintest"
	"github.com/livehook/livehook/plugins/provider"

	"github.com/livehook/livehook/internal/testwait"
)

// startEngine runs an engine on rules with the plugins in pluginsDir,
// logging to log, until the test ends.
func startEngine(t *testing.T, rules, pluginsDir string, log *plugintest.Log) *engine.Engine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, rules, 0o644)
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Options{RulesPath: path, Registry: provider.Provider(provider.Options{Dir: pluginsDir}),
		Store: st, Logger: log.Logger()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("engine stop: %v", err)
		}
		st.Close()
	})
	return e
}

func accept(t *testing.T, e *engine.Engine, stream string) string {
	t.Helper()
	id, err := e.Accept(context.Background(), &event.Event{Source: "test", Kind: event.KindStatus,
		Domain: "play.example.com", App: "live", Stream: stream, Event: "record_error"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitSettled waits until the engine has evaluated event id and settled
// every delivery it planned, delivered or dead, and returns the event's
// page as the admin API shows it.
func waitSettled(t *testing.T, e *engine.Engine, id string) *store.EventDetail {
	t.Helper()
	var d *store.EventDetail
	if !testwait.Within(30*time.Second, func() bool {
		var err error
		d, err = e.Event(id)
		if err != nil && !errors.Is(err, store.ErrNotFound) { // not found: not evaluated yet
			t.Fatalf("event %s: %v", id, err)
		}
		return err == nil && !slices.ContainsFunc(d.Jobs, func(j *store.Job) bool { return j.State == store.Pending })
	}) {
		t.Fatalf("event %s not settled within 30s: %+v", id, d)
	}
	return d
}

// jobOf returns the delivery of d for which match holds, or fails.
func jobOf(t *testing.T, d *store.EventDetail, what string, match func(*store.Job) bool) *store.Job {
	t.Helper()
	i := slices.IndexFunc(d.Jobs, match)
	if i < 0 {
		t.Fatalf("event %s has no delivery %s: %+v", d.Event.ID, what, d.Jobs)
	}
	return d.Jobs[i]
}

// settledAt is when j's last attempt ended.
func settledAt(j *store.Job) time.Time { return j.Attempts[len(j.Attempts)-1].At }

// waitLog waits until the log holds a record for which match holds, and
// returns the index of the first one.
func waitLog(t *testing.T, log *plugintest.Log, what string, match func(map[string]any) bool) (int, map[string]any) {
	t.Helper()
	at, found := -1, map[string]any(nil)
	if !testwait.Within(30*time.Second, func() bool {
		for i, r := range records(log.String()) {
			if match(r) {
				at, found = i, r
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no log record %s within 30s; log:\n%s", what, log.String())
	}
	return at, found
}

func TestEngineKeepsServingWhilePluginsMisbehave(t *testing.T) {
	dir := t.TempDir()
	bad := []struct {
		name    string
		timeout string
		mode    []string
		detail  string // what the dead letter must say
	}{
		{name: "hang", timeout: "3s", mode: []string{"hang"}, detail: "no answer within 3s; killed its process group"},
		{name: "slow", timeout: "3s", mode: []string{"slow", "1h"}, detail: "no answer within 3s"},
		{name: "crash", timeout: "30s", mode: []string{"crash"}, detail: "exit status 2 without an answer"},
		{name: "garbage", timeout: "30s", mode: []string{"answer", "hello", "0"}, detail: "not a JSON answer"},
		{name: "endless", timeout: "30s", mode: []string{"endless"}, detail: "its answer exceeded 1048576 bytes"},
		{name: "midanswer", timeout: "30s", mode: []string{"answer", `{"outcome":`, "3"}, detail: "exit status 3; not a JSON answer"},
		{name: "killed", timeout: "30s", mode: []string{"killed"}, detail: "signal: killed"},
	}
	var rules strings.Builder
	rules.WriteString("actions:\n  audit: {type: log, message: \"audit {{ .stream }}\"}\nrules:\n")
	for _, b := range bad {
		simplePlugin(t, dir, b.name, b.timeout, b.mode...)
		fmt.Fprintf(&rules, "  - name: bad-%s\n    when: stream == %q\n    do:\n      - type: %s\n        delivery: {max_attempts: 1}\n", b.name, b.name, b.name)
	}
	rules.WriteString("  - name: audit\n    do:\n      - action: audit\n")
	var log plugintest.Log
	e := startEngine(t, rules.String(), dir, &log)

	badIDs := map[string]string{}
	for _, b := range bad {
		badIDs[b.name] = accept(t, e, b.name)
	}
	var goodIDs []string
	for i := range 5 {
		goodIDs = append(goodIDs, accept(t, e, fmt.Sprintf("good-%d", i)))
	}

	// Every good event is delivered, and before the hung plugin is even
	// killed: the bad plugins hold up nothing else.
	audit := func(j *store.Job) bool { return j.Action == "audit" }
	hang := jobOf(t, waitSettled(t, e, badIDs["hang"]), "of type hang", func(j *store.Job) bool { return j.Type == "hang" })
	for _, id := range goodIDs {
		j := jobOf(t, waitSettled(t, e, id), "audit", audit)
		if j.State != store.Delivered {
			t.Errorf("event %s: audit %s, want delivered", id, j.State)
		} else if !settledAt(j).Before(settledAt(hang)) {
			t.Errorf("event %s was delivered only after the hung plugin was killed", id)
		}
	}
	for _, b := range bad {
		d := waitSettled(t, e, badIDs[b.name])
		if j := jobOf(t, d, "of type "+b.name, func(j *store.Job) bool { return j.Type == b.name }); j.State != store.Dead || !strings.Contains(j.LastError, b.detail) {
			t.Errorf("%s: %s with %q, want a dead letter saying %q", b.name, j.State, j.LastError, b.detail)
		}
		// The bad event's own audit step was delivered all the same.
		if j := jobOf(t, d, "audit", audit); j.State != store.Delivered {
			t.Errorf("%s: its audit %s, want delivered", b.name, j.State)
		}
	}
	if id := accept(t, e, "after"); id == "" {
		t.Fatal("the engine does not take events after the misbehaviour")
	}
}

// copyExample copies plugins/examples/name into a new plugins folder.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "examples", name)
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(dst)
}

// TestShellPlugin drives the protocol with a plugin written in POSIX sh
// from docs/plugins.md alone: it files the request and reports a
// follow-up event, which a second rule picks up.
func TestShellPlugin(t *testing.T) {
	dir := copyExample(t, "filedrop")
	spool := t.TempDir()
	var log plugintest.Log
	e := startEngine(t, `rules:
  - name: file-it
    when: event == "record_error"
    do:
      - type: filedrop
        spool_dir: `+spool+`
        with: {note: "{{ .stream }} failed"}
  - name: filed
    when: source == "plugin.filedrop" && event == "filed"
    do:
      - type: log
        with: {message: "filed {{ .payload.file }}"}
`, dir, &log)
	id := accept(t, e, "room42")

	_, done := waitLog(t, &log, "the follow-up's log line", func(r map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(r["msg"]), "filed ") && r["rule"] == "filed"
	})
	name := strings.TrimPrefix(done["msg"].(string), "filed ")
	raw, err := os.ReadFile(filepath.Join(spool, name))
	if err != nil {
		t.Fatalf("the plugin did not file the request: %v", err)
	}
	var req struct {
		Plugin     string            `json:"plugin"`
		DeliveryID string            `json:"delivery_id"`
		Settings   map[string]string `json:"settings"`
		Params     map[string]string `json:"params"`
		Event      event.Event       `json:"event"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("filed request is not JSON: %v\n%s", err, raw)
	}
	if req.Plugin != "filedrop" || req.Settings["spool_dir"] != spool || req.Params["note"] != "room42 failed" ||
		req.Event.ID != id || req.Event.Stream != "room42" || req.DeliveryID == "" {
		t.Errorf("filed request %+v, want the plugin's settings, the rendered note and the event", req)
	}
	if !strings.HasPrefix(name, strings.Map(func(r rune) rune {
		if strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", r) {
			return r
		}
		return '_'
	}, req.DeliveryID)) {
		t.Errorf("filed as %q, want the delivery id %q", name, req.DeliveryID)
	}
	_, r := waitLog(t, &log, "the plugin's stderr", func(r map[string]any) bool { return r["msg"] == "plugin stderr" })
	if !strings.HasPrefix(fmt.Sprint(r["stderr"]), "filedrop: delivery "+req.DeliveryID) {
		t.Errorf("stderr record %v, want the script's note", r)
	}
}

func TestEngineRetriesWithTheSameDeliveryID(t *testing.T) {
	dir := t.TempDir()
	folder := simplePlugin(t, dir, "flaky", "30s", "flaky")
	var log plugintest.Log
	e := startEngine(t, `rules:
  - name: r
    do:
      - type: flaky
        delivery: {max_attempts: 3, backoff: 10ms, max_backoff: 20ms}
`, dir, &log)
	id := accept(t, e, "room42")
	if j := jobOf(t, waitSettled(t, e, id), "of type flaky", func(j *store.Job) bool { return j.Type == "flaky" }); j.State != store.Delivered || j.Tries() != 2 {
		t.Errorf("%s after %d attempt(s), want delivered on attempt 2", j.State, j.Tries())
	}
	runs, err := os.ReadFile(filepath.Join(folder, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(runs))
	if len(lines) != 2 || lines[0] != lines[1] {
		t.Errorf("the plugin saw delivery ids %q, want the same one twice", lines)
	}
}

// TestDocsShowTheShellPlugin keeps docs/plugins.md's copy of the plugin
// that TestShellPlugin runs identical to it.
func TestDocsShowTheShellPlugin(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "plugins.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := func(start string) string {
		_, rest, ok := strings.Cut(string(doc), start)
		if !ok {
			t.Fatalf("docs/plugins.md has no block starting %q", start)
		}
		body, _, _ := strings.Cut(rest, "```\n")
		return body
	}
	script, err := os.ReadFile(filepath.Join("..", "examples", "filedrop", "filedrop"))
	if err != nil {
		t.Fatal(err)
	}
	if got := "#!/bin/sh\n" + block("```sh\n#!/bin/sh\n"); got != string(script) {
		t.Errorf("the docs' filedrop differs from plugins/examples/filedrop/filedrop")
	}
	manifest, err := os.ReadFile(filepath.Join("..", "examples", "filedrop", "plugin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(manifest), "\n") // past its first comment line
	if got := block("```yaml\n# plugin.yaml\nname: filedrop\n"); "name: filedrop\n"+got != body {
		t.Errorf("the docs' filedrop manifest differs from plugins/examples/filedrop/plugin.yaml")
	}
}
