//go:build unix

package execaction

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/actions/actiontest"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"

	"github.com/livehook/livehook/internal/testwait"
)

// openExec opens an exec instance from YAML settings through the registry;
// logs go to logs.
func openExec(t *testing.T, settings string, logs *bytes.Buffer) (actionapi.Instance, error) {
	t.Helper()
	typ, ok := actionapi.Default().Lookup("exec")
	if !ok {
		t.Fatal("exec is not registered")
	}
	if logs == nil {
		logs = &bytes.Buffer{}
	}
	s := actiontest.Settings(t, "job", "exec", settings)
	s.Deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return typ.Open(s)
}

func mustStep(t *testing.T, settings string) actionapi.Step {
	t.Helper()
	inst, err := openExec(t, settings, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return actiontest.Step(t, inst, "")
}

// script writes an executable /bin/sh script into a temporary directory.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func testEvent() *event.Event {
	return &event.Event{
		ID: "ev-1", Source: event.SourceRecord, Kind: event.KindFile,
		Domain: "live.example.com", App: "live", Stream: "room42",
		URI: "record/live/room42/0.mp4", Format: "mp4", Duration: 1800.5,
		ReceivedAt: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		Payload:    map[string]any{"uri": "record/live/room42/0.mp4", "duration": 1800.5},
	}
}

func input() actionapi.Input {
	return actionapi.Input{Event: testEvent(), Rule: "archive", DeliveryID: "ev-1.archive.0"}
}

func wantOutcome(t *testing.T, r actionapi.Result, want actionapi.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome = %v (detail %q, err %v), want %v", r.Outcome, r.Detail, r.Err, want)
	}
}

// readEnv parses `env` output.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestSuccessSeesEventAndCleanEnvironment(t *testing.T) {
	const leak = "LIVEHOOK_TEST_DAEMON_SECRET_7f3a"
	t.Setenv(leak, "daemon-only")
	t.Setenv("LANG", "C.UTF-8")
	out := t.TempDir()
	workdir := t.TempDir()
	cmd := script(t, `cat > "$1/stdin.json"; env > "$1/env"; pwd > "$1/pwd"; echo "archived $2"`)
	var logs bytes.Buffer
	inst, err := openExec(t, fmt.Sprintf(`
command: %s
args: [%s, '{{ .stream }}']
dir: %s
env: {ARCHIVE_BUCKET: 'rec-{{ .app }}', EMPTY: ''}
`, cmd, out, workdir), &logs)
	if err != nil {
		t.Fatal(err)
	}
	_, r := actiontest.Deliver(t, actiontest.Step(t, inst, ""), input())
	wantOutcome(t, r, actionapi.Delivered)
	if !strings.Contains(r.Detail, "stdout: archived room42") {
		t.Errorf("detail = %q, want the command's output", r.Detail)
	}

	stdin, err := os.ReadFile(filepath.Join(out, "stdin.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev event.Event
	if err := json.Unmarshal(stdin, &ev); err != nil {
		t.Fatalf("stdin is not JSON: %v: %s", err, stdin)
	}
	if !reflect.DeepEqual(&ev, testEvent()) {
		t.Errorf("stdin decodes to\n%+v\nwant the event\n%+v", ev, *testEvent())
	}

	env := readEnv(t, filepath.Join(out, "env"))
	want := map[string]string{
		"LIVEHOOK_EVENT_ID": "ev-1", "LIVEHOOK_SOURCE": event.SourceRecord, "LIVEHOOK_KIND": "file",
		"LIVEHOOK_DOMAIN": "live.example.com", "LIVEHOOK_APP": "live", "LIVEHOOK_STREAM": "room42",
		"LIVEHOOK_URI": "record/live/room42/0.mp4", "LIVEHOOK_FORMAT": "mp4", "LIVEHOOK_DURATION": "1800.5",
		"LIVEHOOK_EVENT": "", "LIVEHOOK_RULE": "archive", "LIVEHOOK_DELIVERY_ID": "ev-1.archive.0",
		"ARCHIVE_BUCKET": "rec-live", "EMPTY": "", "LANG": "C.UTF-8", "PATH": os.Getenv("PATH"),
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("child env %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	if v, ok := env[leak]; ok {
		t.Errorf("the daemon's %s=%q reached the child", leak, v)
	}
	if pwd, _ := os.ReadFile(filepath.Join(out, "pwd")); strings.TrimSpace(string(pwd)) != workdir {
		t.Errorf("child ran in %q, want %q", strings.TrimSpace(string(pwd)), workdir)
	}
	if !strings.Contains(logs.String(), "event_id=ev-1") || !strings.Contains(logs.String(), `stdout="archived room42"`) {
		t.Errorf("log = %q, want the output logged with the event id", logs.String())
	}
}

func TestFailures(t *testing.T) {
	nonExec := filepath.Join(t.TempDir(), "not-executable.sh")
	if err := os.WriteFile(nonExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		settings string
		want     actionapi.Outcome
		inDetail []string
	}{
		{
			name:     "exit 1 is permanent",
			settings: "command: " + script(t, "echo 'disk full' >&2\necho partial\nexit 1\n"),
			want:     actionapi.Permanent,
			inDetail: []string{"exit status 1", "stderr: disk full", "stdout: partial"},
		},
		{
			name:     "exit 75 is retryable",
			settings: "command: " + script(t, "echo 'upstream busy' >&2\nexit 75\n"),
			want:     actionapi.Retryable,
			inDetail: []string{"exit status 75", "EX_TEMPFAIL", "stderr: upstream busy"},
		},
		{
			name:     "missing program in PATH",
			settings: "command: livehook-test-no-such-program",
			want:     actionapi.Permanent,
			inDetail: []string{"cannot start", "executable file not found"},
		},
		{
			name:     "missing path",
			settings: "command: /nonexistent/livehook/hook",
			want:     actionapi.Permanent,
			inDetail: []string{"cannot start", "no such file or directory"},
		},
		{
			name:     "not executable",
			settings: "command: " + nonExec,
			want:     actionapi.Permanent,
			inDetail: []string{"cannot start", "permission denied"},
		},
		{
			name:     "missing working directory",
			settings: "command: " + script(t, "exit 0\n") + "\ndir: /nonexistent/livehook",
			want:     actionapi.Permanent,
			inDetail: []string{"cannot start"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, r := actiontest.Deliver(t, mustStep(t, tc.settings), input())
			wantOutcome(t, r, tc.want)
			if r.Err == nil {
				t.Error("a failure without an error")
			}
			for _, s := range tc.inDetail {
				if !strings.Contains(r.Detail, s) {
					t.Errorf("detail = %q, want it to contain %q", r.Detail, s)
				}
			}
		})
	}
}

// dead reports whether pid is gone: no such process, or a zombie that
// nobody has reaped yet (it holds no resources and runs no code).
func dead(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	cmd := script(t, "sleep 30 &\necho $! > \"$1\"\necho started\nsleep 30\n")
	st := mustStep(t, fmt.Sprintf("command: %s\nargs: [%s]\ntimeout: 1s", cmd, pidFile))

	start := time.Now()
	_, r := actiontest.Deliver(t, st, input())
	elapsed := time.Since(start)
	wantOutcome(t, r, actionapi.Retryable)
	if !strings.Contains(r.Detail, "killed after 1s") || !strings.Contains(r.Detail, "stdout: started") {
		t.Errorf("detail = %q, want it to say it was killed after 1s, with the output", r.Detail)
	}
	if !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", r.Err)
	}
	// The script sleeps 30s: anything near the 1s timeout proves the kill.
	// The bound is loose for a loaded machine.
	if elapsed > 5*time.Second {
		t.Errorf("Do returned after %v, want about 1s", elapsed)
	}

	waitGone(t, pidFile, "grandchild", "the timeout")
}

// What a command leaves running dies when it exits: the timeout and the
// instance's concurrency bound everything a delivery runs.
func TestLeftoversDieWithTheCommand(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "background.pid")
	cmd := script(t, "sleep 30 &\necho $! > \"$1\"\necho archived\n")
	_, r := actiontest.Deliver(t, mustStep(t, fmt.Sprintf("command: %s\nargs: [%s]", cmd, pidFile)), input())
	wantOutcome(t, r, actionapi.Delivered)
	waitGone(t, pidFile, "background process", "the command exited")
}

// waitGone waits for the process whose pid the script wrote to pidFile to
// be gone, and fails (killing it) if it is still alive 5s later.
func waitGone(t *testing.T, pidFile, who, after string) {
	t.Helper()
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	// Not our child: nothing to wait(2) on.
	if !testwait.Within(5*time.Second, func() bool { return dead(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("%s %d still alive after %s", who, pid, after)
	}
}

func TestStoppedByCaller(t *testing.T) {
	started := filepath.Join(t.TempDir(), "started")
	st := mustStep(t, fmt.Sprintf("command: %s\nargs: [%s]", script(t, "touch \"$1\"\nsleep 30\n"), started))
	p, err := st.Plan(input())
	if err != nil {
		t.Fatal(err)
	}
	// Stopped once the command runs: a stop before it starts is another
	// case (TestStoppedBeforeStart).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		if !testwait.Within(10*time.Second, func() bool { _, err := os.Stat(started); return err == nil }) {
			t.Error("the command did not start within 10s")
		}
	}()
	r := st.Do(ctx, p)
	wantOutcome(t, r, actionapi.Retryable)
	if !errors.Is(r.Err, context.Canceled) || !strings.Contains(r.Detail, "stopped") {
		t.Errorf("detail = %q, err = %v; want a stop by the caller", r.Detail, r.Err)
	}
}

// A delivery stopped before its command starts is retried, not failed for
// good: shutting down says nothing about the command.
func TestStoppedBeforeStart(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	st := mustStep(t, fmt.Sprintf("command: %s\nargs: [%s]", script(t, "touch \"$1\"\n"), marker))
	p, err := st.Plan(input())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := st.Do(ctx, p)
	wantOutcome(t, r, actionapi.Retryable)
	if !errors.Is(r.Err, context.Canceled) || !strings.Contains(r.Detail, "stopped") {
		t.Errorf("detail = %q, err = %v; want a stop by the caller", r.Detail, r.Err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran after the delivery was stopped")
	}
}

func TestEndlessOutputIsBounded(t *testing.T) {
	st := mustStep(t, "command: "+script(t, "yes 'livehook endless output' &\nexec yes 'on stderr too' >&2\n")+"\ntimeout: 1s")
	_, r := actiontest.Deliver(t, st, input())
	wantOutcome(t, r, actionapi.Retryable)
	if max := 2*outputLimit + 200; len(r.Detail) > max {
		t.Errorf("detail is %d bytes, want at most %d", len(r.Detail), max)
	}
	drops := regexp.MustCompile(`\[(\d+) more bytes dropped\]`).FindAllStringSubmatch(r.Detail, -1)
	if len(drops) != 2 {
		t.Fatalf("detail = %.300q..., want a dropped-bytes note for stdout and stderr", r.Detail)
	}
	for _, d := range drops {
		if n, _ := strconv.Atoi(d[1]); n < 64<<10 {
			t.Errorf("only %d bytes dropped: the command was not writing endlessly", n)
		}
	}
}

func TestPlan(t *testing.T) {
	inst, err := openExec(t, `
command: /usr/local/bin/archive
args: ['--stream={{ .stream }}', '{{ .uri }}', '']
timeout: 2m
env: {TOKEN: 'tok-{{ .app }}'}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		with     string
		wantArgs []string
		wantEnv  []string
		timeout  string
	}{
		{
			name:     "instance settings",
			wantArgs: []string{"--stream=room42", "record/live/room42/0.mp4", ""},
			wantEnv:  []string{"TOKEN"},
			timeout:  "2m0s",
		},
		{
			name:     "with overrides args, merges env",
			with:     "{args: ['{{ .format }}'], env: {EXTRA: x, TOKEN: null}, timeout: 5s}",
			wantArgs: []string{"mp4"},
			wantEnv:  []string{"EXTRA"},
			timeout:  "5s",
		},
		{
			name:     "instance settings are untouched by a step's with",
			wantArgs: []string{"--stream=room42", "record/live/room42/0.mp4", ""},
			wantEnv:  []string{"TOKEN"},
			timeout:  "2m0s",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := actiontest.Step(t, inst, tc.with).Plan(input())
			if err != nil {
				t.Fatal(err)
			}
			if p.Target != "/usr/local/bin/archive" {
				t.Errorf("target = %q", p.Target)
			}
			if !reflect.DeepEqual(p.Info["args"], tc.wantArgs) {
				t.Errorf("args = %q, want %q", p.Info["args"], tc.wantArgs)
			}
			var names []string
			for _, n := range p.Info["env"].([]string) {
				if !strings.HasPrefix(n, "LIVEHOOK_") && n != "PATH" && n != "HOME" && n != "LANG" && n != "TZ" {
					names = append(names, n)
				}
			}
			if !reflect.DeepEqual(names, tc.wantEnv) {
				t.Errorf("configured env names = %q, want %q", names, tc.wantEnv)
			}
			if p.Info["timeout"] != tc.timeout {
				t.Errorf("timeout = %v, want %s", p.Info["timeout"], tc.timeout)
			}
			shown, _ := json.Marshal(p)
			if strings.Contains(string(shown), "tok-live") {
				t.Errorf("plan shows an env value: %s", shown)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		want     string
	}{
		{name: "missing command", settings: "args: [x]", want: "job: command is required"},
		{name: "bad env name", settings: "command: x\nenv: {'BAD-NAME': v}", want: `env: "BAD-NAME" is not a valid variable name`},
		{name: "reserved env name", settings: "command: x\nenv: {LIVEHOOK_APP: v}", want: "LIVEHOOK_ prefix is reserved"},
		{name: "negative timeout", settings: "command: x\ntimeout: -1s", want: "timeout -1s: want a positive duration"},
		{name: "bad template", settings: "command: x\nargs: ['{{ .stream '] ", want: "rules.yaml:2:8: template:"},
		{name: "unknown key", settings: "command: x\nshell: true", want: `rules.yaml:2:1: unknown key "shell"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openExec(t, tc.settings, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRenderedNULIsRefused(t *testing.T) {
	st := mustStep(t, "command: /bin/true\nargs: ['{{ .payload.bad }}']")
	in := input()
	in.Event.Payload = map[string]any{"bad": "a\x00b"}
	if _, err := st.Plan(in); err == nil || !strings.Contains(err.Error(), "args[0]: the rendered value holds a NUL byte") {
		t.Fatalf("plan error = %v, want a NUL byte refusal", err)
	}
}
