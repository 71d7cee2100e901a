package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// send-test sends one message for real through a named action and shows
// the service's answer, with the credentials hidden.
func TestSendTestSendsOneMessage(t *testing.T) {
	const token = "tok-0123456789abcdef-secret"
	var mu sync.Mutex
	var bodies []string
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(body))
		st := status
		mu.Unlock()
		if r.URL.Query().Get("token") != token {
			st = http.StatusUnauthorized
		}
		w.WriteHeader(st)
		// A service that quotes the credential back must not get it shown.
		io.WriteString(w, "refused token "+r.URL.Query().Get("token"))
	}))
	t.Cleanup(srv.Close)
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, `actions:
  hook:
    type: webhook
    url: `+srv.URL+`/hook?token=${HOOK_TOKEN}
    body: '{"text":"{{ .stream }}: {{ .event }}"}'
    retry: { attempts: 1 }
  other:
    type: log
rules:
  - name: r
    do: [ { action: hook } ]
`)
	env := map[string]string{"HOOK_TOKEN": token}
	stdout, stderr, code := runCLI(t, env, "send-test", "--rules", rulesPath, "--with", `{body: '{"text":"livehook test for {{ .key.stream }}"}'}`, "hook")
	if code != 0 || !strings.Contains(stdout, "answer: delivered") || !strings.Contains(stdout, "?token=****") {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	mu.Lock()
	if len(bodies) != 1 || bodies[0] != `{"text":"livehook test for send-test"}` {
		t.Errorf("the service got %q, want one test message rendered from --with", bodies)
	}
	status = http.StatusForbidden
	mu.Unlock()

	stdout, stderr, code = runCLI(t, env, "send-test", "--rules", rulesPath, "hook")
	if code != 1 || !strings.Contains(stdout, "answer: permanent: HTTP 403: refused token ****") || strings.Contains(stdout+stderr, token) {
		t.Errorf("a refusal: exit %d:\n%s%s", code, stdout, stderr)
	}
	if _, stderr, code := runCLI(t, env, "send-test", "--rules", rulesPath, "pager"); code != 2 || !strings.Contains(stderr, `no action "pager" under actions:`) || !strings.Contains(stderr, "hook, other") {
		t.Errorf("an unknown action: exit %d, %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, env, "send-test", "--rules", rulesPath, "--with", "[1]", "hook"); code != 2 || !strings.Contains(stderr, "want a mapping of parameters") {
		t.Errorf("--with not a mapping: exit %d, %q", code, stderr)
	}
}

func TestHelpNamesSendTest(t *testing.T) {
	if stdout, _, code := runCLI(t, nil, "--help"); code != 0 || !strings.Contains(stdout, "livehook send-test [--rules PATH] ACTION") {
		t.Errorf("--help does not name send-test:\n%s", stdout)
	}
	if _, stderr, code := runCLI(t, nil, "send-test", "--help"); code != 0 || !strings.Contains(stderr, "-with") || !strings.Contains(stderr, "for real") {
		t.Errorf("send-test --help: exit %d\n%s", code, stderr)
	}
}
