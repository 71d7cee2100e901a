package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the CLI in-process and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	err := run(context.Background(), args, &stdout, &stderr, getenv)
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), code
}

func TestCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rules.yaml")
	writeFile(t, p, `actions:
  pager:
    type: pagerduty
  loud:
    type: log
    colour: red
  audit:
    type: log
rules:
  - name: a
    when: duraton < 10
    do:
      - action: nowhere
  - name: b
    when: event == "record_error"
    do:
      - action: audit
        with: { message: "{{ .stream " }
  - name: a
    when: kind == "file"
    do:
      - type: log
        with: { message: "${LIVEHOOK_TEST_UNSET}" }
`)
	stdout, stderr, code := runCLI(t, nil, "check", p)
	want := []string{
		p + `:3:11: unknown action type "pagerduty" (want one of`,
		p + `:6:5: unknown key "colour" (want one of level, message)`,
		p + `:11:11: rule "a": when: unknown name duraton`,
		p + `:13:17: rule "a": do[0]: undefined action "nowhere"`,
		p + `:18:26: template: 1: unclosed action`,
		p + `:19:5: rule "a" is already defined at ` + p + `:10`,
		p + `:23:26: environment variable LIVEHOOK_TEST_UNSET is not set`,
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 1 || len(lines) != len(want) {
		t.Fatalf("check exit %d, %d lines, want exit 1 and %d lines:\n%s\nstderr: %s", code, len(lines), len(want), stdout, stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant %s…", i+1, lines[i], w)
		}
	}
	if !strings.Contains(stderr, "7 problem(s)") {
		t.Errorf("stderr %q should count the problems", stderr)
	}

	stdout, _, code = runCLI(t, map[string]string{"LIVEHOOK_TEST_UNSET": "x"}, "check", filepath.Join("..", "..", "rules.example.yaml"))
	if code != 0 || !strings.HasPrefix(stdout, "ok: ") || !strings.Contains(stdout, "14 rule(s)") {
		t.Errorf("check of the example: exit %d, %q", code, stdout)
	}
}

func TestTestJSONReportsMatchesForEveryEvent(t *testing.T) {
	events, err := filepath.Glob(filepath.Join("..", "..", "testdata", "events", "*.json"))
	if err != nil || len(events) == 0 {
		t.Fatalf("no testdata events: %v", err)
	}
	want := map[string][]string{
		"file_flv.json":            {"flv-ready"},
		"file_short_m3u8.json":     {"short-recording"},
		"record_started.json":      {},
		"record_paused.json":       {"recording-paused"},
		"record_resumed.json":      {"recording-paused"},
		"record_error.json":        {"recording-failed"},
		"record_error_detail.json": {"recording-failed"},
	}
	args := append([]string{"test", "--json", filepath.Join("..", "..", "rules.example.yaml")}, events...)
	stdout, stderr, code := runCLI(t, nil, args...)
	if code != 0 {
		t.Fatalf("test --json exit %d: %s", code, stderr)
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	seen := 0
	for dec.More() {
		var rep struct {
			File    string `json:"file"`
			Matches []struct {
				Rule    string `json:"rule"`
				Actions []struct {
					Action string         `json:"action"`
					Type   string         `json:"type"`
					Plan   map[string]any `json:"plan"`
				} `json:"actions"`
			} `json:"matches"`
		}
		if err := dec.Decode(&rep); err != nil {
			t.Fatalf("output is not one JSON object per event: %v\n%s", err, stdout)
		}
		seen++
		name := filepath.Base(rep.File)
		var got []string
		for _, m := range rep.Matches {
			got = append(got, m.Rule)
			if len(m.Actions) == 0 || m.Actions[0].Plan["target"] != "log" || m.Actions[0].Plan["body"] == "" {
				t.Errorf("%s: rule %s: actions %+v should show the rendered log message", name, m.Rule, m.Actions)
			}
		}
		wantRules, known := want[name]
		if !known {
			t.Errorf("testdata event %s has no expectation here: add one", name)
			continue
		}
		if strings.Join(got, ",") != strings.Join(wantRules, ",") {
			t.Errorf("%s: matches %v, want %v", name, got, wantRules)
		}
	}
	if seen != len(events) {
		t.Errorf("%d reports for %d events", seen, len(events))
	}
}

func TestTestShowsRenderedMessage(t *testing.T) {
	stdout, _, code := runCLI(t, nil, "test", filepath.Join("..", "..", "rules.example.yaml"),
		filepath.Join("..", "..", "testdata", "events", "record_error_detail.json"))
	if code != 0 || !strings.Contains(stdout, "body: recording failed: play.example.com/live/room42 (BucketNotFound: Bucket not found)") {
		t.Errorf("exit %d, output:\n%s", code, stdout)
	}
}

func TestSendPostsToADaemon(t *testing.T) {
	d := startDaemon(t, filepath.Join("..", "..", "rules.example.yaml"))
	ev := filepath.Join("..", "..", "testdata", "events", "record_error.json")
	stdout, stderr, code := runCLI(t, nil, "send", "--url", d.url("/callbacks/record"), ev)
	if code != 0 || !strings.HasPrefix(stdout, "200 OK") || !strings.Contains(stdout, `"ok":true`) {
		t.Fatalf("send: exit %d, %q %q", code, stdout, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	writeFile(t, bad, `{"domain":"d"}`)
	stdout, _, code = runCLI(t, nil, "send", "--url", d.url("/callbacks/record"), bad)
	if code != 1 || !strings.HasPrefix(stdout, "400 Bad Request") || !strings.Contains(stdout, `missing required field`) {
		t.Errorf("send of a refused event: exit %d, %q", code, stdout)
	}
}

func TestHelpExplainsEveryCommand(t *testing.T) {
	stdout, _, code := runCLI(t, nil, "--help")
	for _, cmd := range []string{"serve", "check", "test", "send", "actions", "version"} {
		if code != 0 || !strings.Contains(stdout, "livehook "+cmd) {
			t.Errorf("--help does not mention %s (exit %d)", cmd, code)
		}
	}
	for _, tc := range []struct {
		cmd   string
		flags []string
	}{
		{"serve", []string{"-rules", "-listen", "-admin", "-log-format", "-log-level", "-shutdown-timeout", "-watch", "LIVEHOOK_LISTEN"}},
		{"check", []string{"file:line:col"}},
		{"test", []string{"-json", "-source"}},
		{"send", []string{"-url", "-timeout"}},
	} {
		_, stderr, code := runCLI(t, nil, tc.cmd, "--help")
		for _, f := range tc.flags {
			if code != 0 || !strings.Contains(stderr, f) {
				t.Errorf("%s --help (exit %d) does not explain %s:\n%s", tc.cmd, code, f, stderr)
			}
		}
	}
	if _, stderr, code := runCLI(t, nil, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, stderr)
	}
	if stdout, _, code := runCLI(t, nil, "version"); code != 0 || !strings.HasPrefix(stdout, "livehook ") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
	if stdout, _, _ := runCLI(t, nil, "actions"); !strings.Contains(stdout, "log ") {
		t.Errorf("actions does not list log: %q", stdout)
	}
}

func TestServeFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{"LIVEHOOK_RULES": filepath.Join(os.TempDir(), "livehook-no-such-rules.yaml"),
		"LIVEHOOK_LOG_FORMAT": "json", "LIVEHOOK_DATA": t.TempDir()}
	_, stderr, code := runCLI(t, env, "serve")
	if code == 0 || !strings.Contains(stderr, "livehook-no-such-rules.yaml") {
		t.Errorf("serve should use LIVEHOOK_RULES: exit %d, %q", code, stderr)
	}
	_, stderr, code = runCLI(t, map[string]string{"LIVEHOOK_LOG_FORMAT": "xml"}, "serve")
	if code != 2 || !strings.Contains(stderr, `--log-format "xml"`) {
		t.Errorf("bad LIVEHOOK_LOG_FORMAT: exit %d, %q", code, stderr)
	}
	_, stderr, code = runCLI(t, map[string]string{"LIVEHOOK_SHUTDOWN_TIMEOUT": "soon"}, "serve")
	if code != 2 || !strings.Contains(stderr, "LIVEHOOK_SHUTDOWN_TIMEOUT") {
		t.Errorf("bad LIVEHOOK_SHUTDOWN_TIMEOUT: exit %d, %q", code, stderr)
	}
}

func TestNamedPluginsFolderMustExist(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "plugins.d")
	if _, stderr, code := runCLI(t, nil, "actions", "--plugins", missing); code == 0 || !strings.Contains(stderr, "no such file") {
		t.Errorf("actions --plugins %s: exit %d %q, want an error: a folder the user names must exist", missing, code, stderr)
	}
	if _, stderr, code := runCLI(t, map[string]string{"LIVEHOOK_PLUGINS": missing}, "actions"); code == 0 {
		t.Errorf("LIVEHOOK_PLUGINS=%s: exit 0 (%q), want an error", missing, stderr)
	}
	// With neither, the default folder may be absent (it is, in the tests' directory).
	if stdout, stderr, code := runCLI(t, nil, "actions"); code != 0 || !strings.Contains(stdout, "webhook") {
		t.Errorf("actions without --plugins: exit %d %q %q", code, stdout, stderr)
	}
}
