package provider_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	_ "github.com/livehook/livehook/actions/log"   // built-ins that plugins may not shadow,
	_ "github.com/livehook/livehook/actions/slack" // and a log action to run beside them
	"github.com/livehook/livehook/engine/yamlconf"
)

// The test binary doubles as every purpose-built plugin: a manifest's
// command runs it as `<test binary> testplugin MODE ARGS...` (Telegraf's
// TestMain trick), so no plugin needs building.
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == "testplugin" {
		os.Exit(testPlugin(os.Args[2], os.Args[3:]))
	}
	// Under -race a binary sleeps a second on exit unless told not to;
	// simplePlugin lets its plugins see this variable.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(m.Run())
}

// testPlugin behaves as mode says; its working directory is the plugin's
// folder, where it may leave notes for the test.
func testPlugin(mode string, args []string) int {
	answer := func(v any) int {
		if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
			return 1
		}
		return 0
	}
	switch mode {
	case "echo": // reports what it was given: its request, environment and arguments
		req, _ := io.ReadAll(os.Stdin)
		fmt.Fprintln(os.Stderr, "echo: got a request")
		// ids are redacted on the way back, so the token's digest proves
		// what arrived on stdin.
		var in struct {
			Settings struct{ Token string } `json:"settings"`
		}
		_ = json.Unmarshal(req, &in)
		digest := sha256.Sum256([]byte(in.Settings.Token))
		return answer(map[string]any{
			"outcome": "delivered", "detail": "echoed",
			"ids": map[string]string{"request": string(req), "env": strings.Join(os.Environ(), "\n"), "args": strings.Join(os.Args, " "),
				"token_sha256": hex.EncodeToString(digest[:])},
			"events": []any{map[string]any{"event": "echoed", "stream": "s1"}, map[string]any{"event": "second", "duration": 3}},
		})
	case "answer": // writes args[0] verbatim and exits with status args[1]
		fmt.Fprint(os.Stdout, args[0])
		code, _ := strconv.Atoi(args[1])
		return code
	case "hang": // starts a grandchild that holds stdout too, then never answers
		child := exec.Command(os.Args[0], "testplugin", "sleep")
		child.Stdout = os.Stdout
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		_ = os.WriteFile("grandchild.pid", []byte(strconv.Itoa(child.Process.Pid)), 0o644)
		time.Sleep(time.Hour)
	case "sleep": // never answers; a file "started" says it runs
		_ = os.WriteFile("started", nil, 0o644)
		time.Sleep(time.Hour)
	case "crash":
		fmt.Fprintln(os.Stderr, "about to crash")
		panic("boom")
	case "endless": // never stops writing to stdout
		chunk := []byte(strings.Repeat(`{"outcome":"delivered"}`, 1000))
		for {
			if _, err := os.Stdout.Write(chunk); err != nil {
				return 1
			}
		}
	case "slow": // starts answering only after args[0]
		d, _ := time.ParseDuration(args[0])
		time.Sleep(d)
		_, _ = io.Copy(io.Discard, os.Stdin)
		return answer(map[string]any{"outcome": "delivered", "detail": "slow but sure"})
	case "killed":
		p, _ := os.FindProcess(os.Getpid())
		_ = p.Kill()
		time.Sleep(time.Hour)
	case "stderr-flood": // 1 MiB of stderr, then a good answer
		line := strings.Repeat("x", 1023) + "\n"
		for range 1024 {
			fmt.Fprint(os.Stderr, line)
		}
		return answer(map[string]any{"outcome": "delivered"})
	case "flaky": // retryable on the first run of a delivery, delivered after
		var req struct {
			DeliveryID string `json:"delivery_id"`
		}
		_ = json.NewDecoder(os.Stdin).Decode(&req)
		runs, _ := os.ReadFile("runs")
		f, err := os.OpenFile("runs", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return 1
		}
		fmt.Fprintln(f, req.DeliveryID)
		f.Close()
		if !strings.Contains(string(runs), req.DeliveryID) {
			return answer(map[string]any{"outcome": "retryable", "detail": "not yet", "retry_after": 0.01})
		}
		return answer(map[string]any{"outcome": "delivered", "detail": "second time lucky"})
	}
	fmt.Fprintln(os.Stderr, "unknown mode", mode)
	return 1
}

// testCommand is a manifest command that runs the test binary in mode.
func testCommand(t *testing.T, mode ...string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(append([]string{self, "testplugin"}, mode...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b) // JSON is YAML
}

// addPlugin writes dir/name/plugin.yaml and returns the plugin's folder.
func addPlugin(t *testing.T, dir, name, manifest string) string {
	t.Helper()
	folder := filepath.Join(dir, name)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(folder, "plugin.yaml"), manifest, 0o644)
	return folder
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// simplePlugin adds a plugin named name that runs the test binary in mode,
// with one template parameter, message.
func simplePlugin(t *testing.T, dir, name, timeout string, mode ...string) string {
	t.Helper()
	return addPlugin(t, dir, name, fmt.Sprintf(`name: %s
protocol: 1
command: %s
timeout: %s
env: [GORACE]
params:
  - {name: message, template: true}
`, name, testCommand(t, mode...), timeout))
}

// checkWants checks that err holds exactly the diagnostics for file that
// the `# want: "substring"` comments in src ask for, one per commented
// line: the comment's own line is the expected line, so expectations
// cannot drift from the text (analysistest's convention).
func checkWants(t *testing.T, err error, file, src string) {
	t.Helper()
	type want struct {
		line int
		sub  string
	}
	var wants []want
	for i, line := range strings.Split(src, "\n") {
		if _, w, ok := strings.Cut(line, "# want: "); ok {
			sub, uerr := strconv.Unquote(strings.TrimSpace(w))
			if uerr != nil {
				t.Fatalf("line %d: bad want comment %s", i+1, w)
			}
			wants = append(wants, want{i + 1, sub})
		}
	}
	if len(wants) == 0 {
		t.Fatal("no want comments")
	}
	var got yamlconf.List
	for _, d := range yamlconf.Diagnostics(err) {
		if d.File == file {
			got = append(got, d)
		}
	}
	if len(got) != len(wants) {
		t.Fatalf("%d diagnostics for %s, want %d:\n%v", len(got), file, len(wants), err)
	}
	for i, w := range wants {
		if got[i].Line != w.line || !strings.Contains(got[i].Msg, w.sub) {
			t.Errorf("diagnostic %s\nwant line %d containing %q", got[i], w.line, w.sub)
		}
	}
}

// yamlOK fails the test if src is not YAML: a typo in a test's manifest
// must not pass for the error under test.
func yamlOK(t *testing.T, src string) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatalf("test YAML does not parse: %v", err)
	}
}
