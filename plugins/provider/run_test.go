//go:build unix

package provider_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/plugins/internal/plugintest"

	"github.com/livehook/livehook/internal/testwait"
)

// records parses a JSON log into records.
func records(log string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestRequestCarriesSettingsParamsAndEvent(t *testing.T) {
	t.Setenv("LIVEHOOK_TEST_ALLOWED", "yes")
	t.Setenv("LIVEHOOK_TEST_SECRET_ENV", "hunter2-from-env")
	dir := t.TempDir()
	kitPlugin(t, dir, "echo")
	var log plugintest.Log
	set, err := plugintest.Load(t, dir, nil, `actions:
  a:
    type: kit
    token: t0p-s3cret
    wait: 1m30s
    labels: {team: live}
    message: "{{ .stream }} failed"
rules:
  - name: failed
    do:
      - action: a
        with: {tags: ["{{ .app }}", fixed], extra: {n: 1, ok: true, list: ["{{ .domain }}", null]}}
`, log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	ev := plugintest.Event("ev1", "room42")
	plan, res := plugintest.Deliver(t, set, "failed", ev)
	if res.Outcome != actionapi.Delivered || res.Detail != "echoed" {
		t.Fatalf("result %+v, want delivered: echoed", res)
	}

	var req map[string]any
	if err := json.Unmarshal([]byte(res.IDs["request"]), &req); err != nil {
		t.Fatalf("the plugin's stdin is not JSON: %v", err)
	}
	want := map[string]any{
		"protocol": 1.0, "plugin": "kit", "action": "a", "rule": "failed",
		"delivery_id": "ev1.failed.0", "timeout_ms": 20000.0,
		// The token reached the plugin (its digest below) and was
		// redacted when the plugin repeated it in its answer.
		"settings": map[string]any{"token": "****", "count": 3.0, "wait": 90000.0, "labels": map[string]any{"team": "live"}},
		"params": map[string]any{"message": "room42 failed", "level": "info", "tags": []any{"live", "fixed"},
			"extra": map[string]any{"n": 1.0, "ok": true, "list": []any{"play.example.com", nil}}},
	}
	if sum := sha256.Sum256([]byte("t0p-s3cret")); res.IDs["token_sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("the plugin did not get the real token on stdin")
	}
	evJSON := req["event"]
	delete(req, "event")
	if !reflect.DeepEqual(req, want) {
		t.Errorf("request\n got %v\nwant %v", req, want)
	}
	if e, _ := evJSON.(map[string]any); e["id"] != "ev1" || e["stream"] != "room42" || e["event"] != "record_error" {
		t.Errorf("request event %v, want the event", evJSON)
	}
	// Key order is part of the protocol: shell plugins take first matches.
	raw := res.IDs["request"]
	if i, j := strings.Index(raw, `"settings"`), strings.Index(raw, `"event"`); i < 0 || j < i {
		t.Errorf("settings do not come before the event in %s", raw)
	}

	if env := res.IDs["env"]; env != "LIVEHOOK_TEST_ALLOWED=yes" {
		t.Errorf("the plugin's environment is %q, want only the allowed variable that is set", env)
	}
	if args := res.IDs["args"]; strings.Contains(args, "t0p-s3cret") || !strings.HasSuffix(args, "testplugin echo") {
		t.Errorf("the plugin's arguments are %q, want the manifest's command only", args)
	}

	shown, _ := json.Marshal(plan)
	if strings.Contains(string(shown), "t0p-s3cret") || !strings.Contains(string(shown), `"token":"****"`) {
		t.Errorf("the plan shows %s, want the token as ****", shown)
	}

	if len(res.Events) != 2 {
		t.Fatalf("%d follow-up events, want 2", len(res.Events))
	}
	if f := res.Events[0]; f.Source != "plugin.kit" || f.Kind != event.KindEvent || f.Event != "echoed" || f.Stream != "s1" {
		t.Errorf("follow-up %+v, want source plugin.kit, event echoed, stream s1", f)
	}
	if f := res.Events[1]; f.Event != "second" || f.Duration != 3 {
		t.Errorf("follow-up %+v, want event second, duration 3", f)
	}

	var stderr map[string]any
	for _, r := range records(log.String()) {
		if r["msg"] == "plugin stderr" {
			stderr = r
		}
	}
	if stderr == nil || stderr["stderr"] != "echo: got a request\n" || stderr["event_id"] != "ev1" ||
		stderr["delivery_id"] != "ev1.failed.0" || stderr["plugin"] != "kit" || stderr["level"] != "INFO" {
		t.Errorf("stderr log record %v, want the plugin's stderr with event and delivery ids", stderr)
	}
}

// gone reports whether pid has exited: it no longer exists, or it is a
// zombie that nobody reaped yet.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

func TestMisbehavingPlugins(t *testing.T) {
	tests := []struct {
		name        string
		mode        []string
		timeout     string
		wantOutcome actionapi.Outcome
		wantDetail  []string // substrings, in order
		wantStderr  string   // substring of the logged stderr; "" for none
		wantAfter   time.Duration
	}{
		{name: "hang", mode: []string{"hang"}, timeout: "1s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{"no answer within 1s; killed its process group"}},
		{name: "slow start beyond the timeout", mode: []string{"slow", "1h"}, timeout: "1s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{"no answer within 1s; killed its process group"}},
		{name: "slow start within the timeout", mode: []string{"slow", "200ms"}, timeout: "30s", wantOutcome: actionapi.Delivered,
			wantDetail: []string{"slow but sure"}},
		{name: "crash", mode: []string{"crash"}, timeout: "30s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{"exit status 2 without an answer; stderr: "}, wantStderr: "about to crash\npanic: boom"},
		{name: "killed by a signal", mode: []string{"killed"}, timeout: "30s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{"signal: killed without an answer"}},
		{name: "garbage", mode: []string{"answer", "hello, I am not JSON", "0"}, timeout: "30s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{"exit status 0; not a JSON answer: invalid character 'h'", `(stdout began "hello, I am not JSON")`}},
		{name: "exit mid-answer", mode: []string{"answer", `{"outcome":"deliv`, "3"}, timeout: "30s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{"exit status 3; not a JSON answer: unexpected EOF"}},
		{name: "endless output", mode: []string{"endless"}, timeout: "30s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{"its answer exceeded 1048576 bytes; killed it"}},
		{name: "unknown outcome", mode: []string{"answer", `{"outcome":"maybe"}`, "0"}, timeout: "30s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{`invalid answer: outcome "maybe": want delivered, retryable or permanent`}},
		{name: "misspelt key", mode: []string{"answer", `{"outcome":"delivered","detial":"x"}`, "0"}, timeout: "30s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{`json: unknown field "detial"`}},
		{name: "two answers", mode: []string{"answer", `{"outcome":"delivered"} {"outcome":"delivered"}`, "0"}, timeout: "30s", wantOutcome: actionapi.Retryable,
			wantDetail: []string{"more after the JSON object"}},
		{name: "a valid answer decides whatever the exit status", mode: []string{"answer", `{"outcome":"permanent","detail":"no such channel"}`, "1"},
			timeout: "30s", wantOutcome: actionapi.Permanent, wantDetail: []string{"no such channel"}},
		{name: "retryable with a retry-after", mode: []string{"answer", `{"outcome":"retryable","detail":"rate limited","retry_after":2.5}`, "0"},
			timeout: "30s", wantOutcome: actionapi.Retryable, wantDetail: []string{"rate limited"}, wantAfter: 2500 * time.Millisecond},
		{name: "a retry-after is capped at an hour", mode: []string{"answer", `{"outcome":"retryable","retry_after":1e300}`, "0"},
			timeout: "30s", wantOutcome: actionapi.Retryable, wantAfter: time.Hour},
		{name: "a flood of stderr is bounded", mode: []string{"stderr-flood"}, timeout: "30s", wantOutcome: actionapi.Delivered,
			wantStderr: "\n[… 1040384 bytes dropped …]\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			folder := simplePlugin(t, dir, "bad", tc.timeout, tc.mode...)
			var log plugintest.Log
			set, err := plugintest.Load(t, dir, nil, "rules:\n  - name: r\n    do:\n      - type: bad\n", log.Logger())
			if err != nil {
				t.Fatal(err)
			}
			_, res := plugintest.Deliver(t, set, "r", plugintest.Event("ev1", "room42"))
			if res.Outcome != tc.wantOutcome {
				t.Errorf("outcome %s (%s), want %s", res.Outcome, res.Detail, tc.wantOutcome)
			}
			rest := res.Detail
			for _, w := range tc.wantDetail {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("detail %q lacks %q", res.Detail, w)
					break
				}
				rest = rest[i+len(w):]
			}
			if (res.Err != nil) != (res.Outcome != actionapi.Delivered) {
				t.Errorf("err %v with outcome %s", res.Err, res.Outcome)
			}
			if res.RetryAfter != tc.wantAfter {
				t.Errorf("retry after %s, want %s", res.RetryAfter, tc.wantAfter)
			}

			var logged []string
			for _, r := range records(log.String()) {
				if r["msg"] == "plugin stderr" && r["event_id"] == "ev1" {
					logged = append(logged, r["stderr"].(string))
				}
			}
			switch {
			case tc.wantStderr == "" && len(logged) > 0:
				t.Errorf("stderr logged: %q", logged)
			case tc.wantStderr != "" && (len(logged) != 1 || !strings.Contains(logged[0], tc.wantStderr) || len(logged[0]) > 9<<10):
				t.Errorf("stderr logged %d time(s): %.300q…, want once, at most 9 KiB, with %q", len(logged), logged, tc.wantStderr)
			}

			if tc.name == "hang" {
				b, err := os.ReadFile(filepath.Join(folder, "grandchild.pid"))
				if err != nil {
					t.Fatalf("the plugin did not start its grandchild: %v", err)
				}
				pid, _ := strconv.Atoi(string(b))
				if !testwait.Within(10*time.Second, func() bool { return gone(pid) }) {
					t.Fatalf("grandchild %d still runs after its plugin was killed", pid)
				}
			}
		})
	}
}

func TestPluginThatCannotStartIsPermanent(t *testing.T) {
	dir := t.TempDir()
	folder := addPlugin(t, dir, "vanishing", "name: vanishing\nprotocol: 1\ncommand: ./run\n")
	writeFile(t, filepath.Join(folder, "run"), "#!/bin/sh\n", 0o755)
	set, err := plugintest.Load(t, dir, nil, "rules:\n  - name: r\n    do:\n      - type: vanishing\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Removed after the load, as by a botched upgrade.
	if err := os.Remove(filepath.Join(folder, "run")); err != nil {
		t.Fatal(err)
	}
	_, res := plugintest.Deliver(t, set, "r", plugintest.Event("ev1", "room42"))
	if res.Outcome != actionapi.Permanent || !strings.HasPrefix(res.Detail, "cannot start the plugin: ") {
		t.Errorf("result %s %q, want permanent: cannot start the plugin", res.Outcome, res.Detail)
	}
}

func TestSecretsAreRedactedFromWhatThePluginSays(t *testing.T) {
	dir := t.TempDir()
	addPlugin(t, dir, "leaky", fmt.Sprintf(`name: leaky
protocol: 1
command: %s
settings:
  - {name: token, secret: true}
`, testCommand(t, "answer", `{"outcome":"permanent","detail":"bad token sup3r-s3cret-token"}`, "0")))
	set, err := plugintest.Load(t, dir, nil, "rules:\n  - name: r\n    do:\n      - type: leaky\n        token: sup3r-s3cret-token\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, res := plugintest.Deliver(t, set, "r", plugintest.Event("ev1", "room42"))
	if res.Detail != "bad token ****" || res.Err.Error() != "bad token ****" {
		t.Errorf("detail %q, err %v: want the token redacted", res.Detail, res.Err)
	}
}

func TestShutdownKillsARunningPlugin(t *testing.T) {
	dir := t.TempDir()
	folder := simplePlugin(t, dir, "sleepy", "1h", "sleep")
	set, err := plugintest.Load(t, dir, nil, "rules:\n  - name: r\n    do:\n      - type: sleepy\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	step := set.Rules[0].Steps[0].Step
	plan, err := step.Plan(actionapi.Input{Event: plugintest.Event("ev1", "room42"), Rule: "r", DeliveryID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan actionapi.Result, 1)
	go func() { done <- step.Do(ctx, plan) }()
	// Stop it once it runs, so that what ends is the plugin, not its start.
	testwait.Until(t, 30*time.Second, "the plugin's start", func() bool {
		_, err := os.Stat(filepath.Join(folder, "started"))
		return err == nil
	})
	cancel()
	select {
	case res := <-done:
		if res.Outcome != actionapi.Retryable || !strings.HasPrefix(res.Detail, "livehook stopped waiting (shutting down)") {
			t.Errorf("result %s %q, want retryable: livehook stopped waiting", res.Outcome, res.Detail)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Do did not return within 30s of its context ending")
	}
}
