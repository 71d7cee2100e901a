package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// examplePlugins returns a plugins folder holding the shell example
// filedrop, which needs no build.
func examplePlugins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "filedrop"), os.DirFS(filepath.Join("..", "..", "plugins", "examples", "filedrop"))); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckAndTestWithPlugins(t *testing.T) {
	plugins := examplePlugins(t)
	spool := t.TempDir()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, `rules:
  - name: spool
    do:
      - type: filedrop
        spool_dir: `+spool+`
        with: { note: "{{ .stream }} failed" }
`)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, `rules:
  - name: spool
    do:
      - type: filedrop
        spool_dir: relative/dir
        colour: red
`)
	shadow := t.TempDir()
	if err := os.CopyFS(filepath.Join(shadow, "log"), os.DirFS(filepath.Join(plugins, "filedrop"))); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(shadow, "log", "plugin.yaml")
	writeFile(t, manifest, strings.Replace(string(readFile(t, manifest)), "name: filedrop", "name: log", 1))
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr string
	}{
		{name: "plugin type resolves", args: []string{"check", "--plugins", plugins, rules}, wantStdout: []string{"ok: "}},
		{name: "from LIVEHOOK_PLUGINS", env: map[string]string{"LIVEHOOK_PLUGINS": plugins}, args: []string{"check", rules}, wantStdout: []string{"ok: "}},
		{name: "settings checked against the manifest", args: []string{"check", "--plugins", plugins, bad}, wantCode: 1,
			wantStdout: []string{bad + `:5:20: spool_dir: "relative/dir" does not match`, bad + `:6:9: unknown key "colour" (want one of note, spool_dir, timeout)`}},
		{name: "without the plugins folder", args: []string{"check", rules}, wantCode: 1,
			wantStdout: []string{rules + `:4:15: unknown action type "filedrop"`}},
		{name: "a named folder that is missing", args: []string{"check", "--plugins", filepath.Join(plugins, "nope"), rules}, wantCode: 1,
			wantStderr: "plugins: open " + filepath.Join(plugins, "nope")},
		{name: "a plugin shadowing a built-in", args: []string{"check", "--plugins", shadow, rules}, wantCode: 1,
			wantStdout: []string{filepath.Join(shadow, "log", "plugin.yaml") + `:2:7: plugin "log" would shadow the built-in action type "log"`}},
		{name: "test shows the plan without running it", args: []string{"test", "--plugins", plugins, rules, filepath.Join("..", "..", "testdata", "events", "record_error.json")},
			wantStdout: []string{"spool/do[0] (filedrop)", `"note": "gs_stream failed"`, `"spool_dir": "` + spool + `"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, tc.env, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, stderr)
			}
		})
	}
	entries, _ := os.ReadDir(spool)
	if len(entries) != 0 {
		t.Errorf("check or test ran the plugin: %d file(s) in the spool", len(entries))
	}
}

func TestDaemonRunsPlugins(t *testing.T) {
	plugins := examplePlugins(t)
	spool := t.TempDir()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, `rules:
  - name: spool
    when: event == "record_error"
    do:
      - type: filedrop
        spool_dir: `+spool+`
`)
	d := startDaemonWith(t, serveConfig{rules: rules, plugins: plugins})
	status, reply := post(t, d.url("/callbacks/record"), "", readFile(t, filepath.Join("..", "..", "testdata", "events", "record_error.json")))
	if status != http.StatusOK {
		t.Fatalf("reply %d %v", status, reply)
	}
	var entries []os.DirEntry
	if !testwait.Within(10*time.Second, func() bool {
		entries, _ = os.ReadDir(spool)
		return len(entries) == 1 && strings.HasSuffix(entries[0].Name(), ".json")
	}) {
		t.Fatalf("the plugin filed %d request(s) within 10s, want 1; log:\n%v", len(entries), d.log.records())
	}
	d.waitDrained(t)
	if entries, _ := os.ReadDir(spool); len(entries) != 1 {
		t.Errorf("the plugin filed %d requests once the daemon was drained, want 1", len(entries))
	}
}
