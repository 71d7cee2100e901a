package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestConsoleOnTheAdminListener(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, "rules:\n  - name: files\n    when: kind == \"file\"\n    do: [ { type: log, with: { message: \"file {{ .uri }}\" } } ]\n")
	html := map[string]string{"Accept": "text/html"}

	on := startDaemonWith(t, serveConfig{rules: rules})
	for path, want := range map[string]string{
		"/":       "<h1>Events</h1>",
		"/rules":  `id="rule-files"`,
		"/status": "<dt>Version</dt><dd>" + versionString() + "</dd>",
	} {
		if status, body := do(t, "GET", on.admURL(path), html, ""); status != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%s", path, status, want, body)
		}
	}
	if status, body := do(t, "GET", on.admURL("/api/nope"), nil, ""); status != 404 || !strings.Contains(body, `"ok": false`) {
		t.Errorf("an unknown API path: %d %s", status, body)
	}

	ro := startDaemonWith(t, serveConfig{rules: rules, hardening: hardeningConfig{adminReadOnly: true}})
	if status, body := do(t, "POST", ro.admURL("/-/reload"), nil, ""); status != 403 || !strings.Contains(body, "read-only") {
		t.Errorf("reload with --admin-read-only: %d %s", status, body)
	}
	if status, body := do(t, "POST", ro.admURL("/deadletters/x/replay"), nil, "csrf=x"); status != 403 || !strings.Contains(body, "read-only") {
		t.Errorf("a console replay with --admin-read-only: %d %s", status, body)
	}

	off := startDaemonWith(t, serveConfig{rules: rules, noConsole: true})
	if status, body := do(t, "GET", off.admURL("/"), html, ""); status != 404 || !strings.Contains(body, "not found: GET /") {
		t.Errorf("GET / with --console=false: %d %s", status, body)
	}
	if status, _ := do(t, "GET", off.admURL("/api/rules"), nil, ""); status != 200 {
		t.Errorf("the API with --console=false: %d", status)
	}
}
