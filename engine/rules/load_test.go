package rules_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/yamlconf"
)

// loadProbe loads `actions: {p: {type: probe, <settings>}}` and returns the
// settings the probe instance decoded.
func loadProbe(t *testing.T, settings string, vars map[string]string) (probeConfig, error) {
	t.Helper()
	reg, p := isolated(t)
	src := "actions:\n  p:\n    type: probe\n" + settings
	set, err := rules.Load(writeRules(t, src), options(reg, vars))
	if err != nil {
		return probeConfig{}, err
	}
	defer set.Retire()
	c, ok := p.config("p")
	if !ok {
		t.Fatal("probe instance not opened")
	}
	return c, nil
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "token")
	if err := os.WriteFile(secretFile, []byte("s3cr3t-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	crlfFile := filepath.Join(dir, "crlf")
	if err := os.WriteFile(crlfFile, []byte("line1\nline2\r\n\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"HOST": "hooks.example.com", "EMPTY": "", "N": "7", "F": "2.5", "B": "true", "T": "1m30s", "INJECT": "x\nn: 3", "TOKEN": "SECabcdef"}
	tests := []struct {
		name     string
		settings string
		check    func(c probeConfig) bool
	}{
		{"variable", "    s: ${HOST}\n", func(c probeConfig) bool { return c.S == "hooks.example.com" }},
		{"inside text", "    s: https://${HOST}/hook?x=${N}\n", func(c probeConfig) bool { return c.S == "https://hooks.example.com/hook?x=7" }},
		{"default when unset", "    s: ${UNSET:-fallback}\n", func(c probeConfig) bool { return c.S == "fallback" }},
		{"default when empty", "    s: ${EMPTY:-fallback}\n", func(c probeConfig) bool { return c.S == "fallback" }},
		{"empty default", "    s: a${UNSET:-}b\n", func(c probeConfig) bool { return c.S == "ab" }},
		{"set value beats the default", "    s: ${HOST:-fallback}\n", func(c probeConfig) bool { return c.S == "hooks.example.com" }},
		{"default with a colon", "    s: ${UNSET:-http://x:8080}\n", func(c probeConfig) bool { return c.S == "http://x:8080" }},
		{"$${ is a literal ${", "    s: \"cost $${HOST} and ${N}\"\n", func(c probeConfig) bool { return c.S == "cost ${HOST} and 7" }},
		{"$$ without a brace stays", "    s: a$$b\n", func(c probeConfig) bool { return c.S == "a$$b" }},
		{"a lone $ stays", "    s: $HOST\n", func(c probeConfig) bool { return c.S == "$HOST" }},
		{"file, trailing newline trimmed", "    s: ${file:" + secretFile + "}\n", func(c probeConfig) bool { return c.S == "s3cr3t-token" }},
		{"file, inner newlines kept", "    s: ${file:" + crlfFile + "}\n", func(c probeConfig) bool { return c.S == "line1\nline2" }},
		{"into a secret", "    token: ${TOKEN}\n", func(c probeConfig) bool { return c.Token.Reveal() == "SECabcdef" }},
		{"a value cannot inject YAML", "    s: ${INJECT}\n", func(c probeConfig) bool { return c.S == "x\nn: 3" && c.N == 0 }},
		{"quoted number stays a string", "    s: \"${N}\"\n", func(c probeConfig) bool { return c.S == "7" }},
		{"duration", "    d: ${T}\n", func(c probeConfig) bool { return c.D == 90*time.Second }},
		// The value decodes as if it had been written in place of ${N}.
		{"int", "    n: ${N}\n", func(c probeConfig) bool { return c.N == 7 }},
		{"float", "    f: ${F}\n", func(c probeConfig) bool { return c.F == 2.5 }},
		{"bool", "    b: ${B}\n", func(c probeConfig) bool { return c.B }},
		{"int with a default", "    n: ${UNSET:-12}\n", func(c probeConfig) bool { return c.N == 12 }},
		{"in a step template", "    text: \"{{ .stream }}@${HOST}\"\n", func(c probeConfig) bool { return c.Params.Text.Source() == "{{ .stream }}@hooks.example.com" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadProbe(t, tt.settings, vars)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("decoded %+v (token %q)", c, c.Token.Reveal())
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		col      int
		want     string
	}{
		{"unset variable", "    s: ${NOPE_NOT_SET}\n", 8, "environment variable NOPE_NOT_SET is not set (write ${NOPE_NOT_SET:-default} to give a default)"},
		{"empty variable", "    s: ${EMPTY}\n", 8, "environment variable EMPTY is not set"},
		{"unterminated", "    s: ${HOST\n", 8, `unterminated ${ in "${HOST"`},
		{"bad name", "    s: ${1HOST}\n", 8, "${1HOST}: not a valid variable name"},
		{"empty name", "    s: ${}\n", 8, "${}: not a valid variable name"},
		{"name with a dash", "    s: ${MY-VAR}\n", 8, "${MY-VAR}: not a valid variable name"},
		{"missing file", "    s: ${file:/nonexistent/livehook-token}\n", 8, "${file:/nonexistent/livehook-token}: no such file or directory"},
		{"a directory", "    s: ${file:/}\n", 8, "${file:/}: is a directory"},
		{"quoted", "    s:   \"x ${NOPE_NOT_SET}\"\n", 10, "NOPE_NOT_SET is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadProbe(t, tt.settings, map[string]string{"EMPTY": ""})
			ds := yamlconf.Diagnostics(err)
			if len(ds) == 0 {
				t.Fatalf("error = %v, want diagnostics", err)
			}
			if d := ds[0]; d.Line != 4 || d.Col != tt.col || !strings.Contains(d.Msg, tt.want) {
				t.Errorf("diagnostic %s, want line 4 col %d containing %q", d, tt.col, tt.want)
			}
		})
	}
}

// The environment reaches conditions as well as settings.
func TestExpandInCondition(t *testing.T) {
	set, err := rules.Load(writeRules(t, "rules:\n  - name: r\n    when: stream == \"${STREAM}\"\n    do:\n      - type: log\n"),
		options(actionapi.Default(), map[string]string{"STREAM": "room42"}))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	if set.Rules[0].When != `stream == "room42"` {
		t.Errorf("when = %q", set.Rules[0].When)
	}
}

func TestLoadPaths(t *testing.T) {
	empty := t.TempDir()
	onlyOther := t.TempDir()
	if err := os.WriteFile(filepath.Join(onlyOther, "rules.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(onlyOther, ".rules.yaml"), []byte("rules: []"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(onlyOther, "dir.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(onlyOther, "gone.yaml"), filepath.Join(onlyOther, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, want string }{
		{"empty directory", empty, "load rules: no *.yaml or *.yml files in " + empty},
		{"no rules files", onlyOther, "load rules: no *.yaml or *.yml files in " + onlyOther},
		{"missing path", filepath.Join(empty, "nope.yaml"), "load rules: stat "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := rules.Load(tt.path, options(actionapi.Default(), nil))
			if err == nil {
				t.Fatalf("loaded %v", set.Summary())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestLoadDirectory(t *testing.T) {
	path := filepath.Join(fixtureDir, "valid", "multi")
	set, err := rules.Load(path, options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	var files []string
	for _, f := range set.Files {
		files = append(files, filepath.Base(f))
	}
	if !slices.Equal(files, []string{"10-actions.yaml", "20-rules.yaml", "30-more.yml"}) {
		t.Errorf("files = %v: want *.yaml and *.yml in name order, no hidden or other files", files)
	}
	if got := ruleNames(set); !slices.Equal(got, []string{"status-events", "file-events", "last"}) {
		t.Errorf("rules = %v, want file order", got)
	}
	if len(set.Actions) != 1 || set.Actions[0].Name != "audit" || filepath.Base(set.Actions[0].File) != "10-actions.yaml" || set.Actions[0].Line != 2 {
		t.Errorf("actions = %+v", set.Actions)
	}
	r := set.Rules[0]
	if filepath.Base(r.File) != "20-rules.yaml" || r.Line != 2 || r.Steps[0].Action != "audit" || r.Steps[0].Type != "log" {
		t.Errorf("rule %q from %s:%d, step %+v", r.Name, r.File, r.Line, r.Steps[0])
	}
	if set.Summary() != "3 file(s), 1 action(s), 3 rule(s) (3 enabled)" {
		t.Errorf("Summary = %q", set.Summary())
	}
}

func TestLoadEmptyFile(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "---\n"} {
		set, err := rules.Load(writeRules(t, src), options(actionapi.Default(), nil))
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if len(set.Rules) != 0 || set.Summary() != "1 file(s), 0 action(s), 0 rule(s) (0 enabled)" {
			t.Errorf("%q: %s", src, set.Summary())
		}
		set.Retire()
	}
}

// yaml.Unmarshal reads the first document only; rules after a `---` must
// not be dropped without a word.
func TestLoadMultiDocumentFile(t *testing.T) {
	src := "actions:\n  audit: {type: log}\n---\nrules:\n  - name: r\n    do: [{action: audit}]\n"
	set, err := rules.Load(writeRules(t, src), options(actionapi.Default(), nil))
	if err != nil {
		if ds := yamlconf.Diagnostics(err); len(ds) != 1 || ds[0].Line != 3 {
			t.Errorf("refusing a second document is fine, but at its --- (line 3): %v", err)
		}
		return
	}
	defer set.Retire()
	if got := ruleNames(set); !slices.Equal(got, []string{"r"}) {
		t.Errorf("rules = %v: the second document was dropped silently", got)
	}
}

func TestLoadShapeErrors(t *testing.T) {
	tests := []struct {
		name, src string
		line, col int
		want      string
	}{
		{"top level is a list", "- a\n", 1, 1, "want a mapping with keys actions, rules"},
		{"actions is a list", "actions: [a]\n", 1, 10, "actions: want a mapping of action names to settings"},
		{"action is a string", "actions:\n  a: log\n", 2, 6, `action "a": want a mapping with a type`},
		{"rules is a mapping", "rules: {a: 1}\n", 1, 8, "rules: want a list of rules"},
		{"rule without a name", "rules:\n  - do: [{type: log}]\n", 2, 5, "rule: missing name"},
		{"step is a string", "rules:\n  - name: r\n    do: [log]\n", 3, 10, `rule "r": do[0]: want a mapping with action or type`},
		{"step with neither", "rules:\n  - name: r\n    do:\n      - with: {message: x}\n", 4, 9, `rule "r": do[0]: want action (a named action) or type (an inline one)`},
		{"with is a list", "rules:\n  - name: r\n    do:\n      - type: log\n        with: [a]\n", 5, 15, `rule "r": do[0]: with: want a mapping of parameters`},
		{"empty when", "rules:\n  - name: r\n    when: \"\"\n    do: [{type: log}]\n", 3, 11, `rule "r": when: want an expression`},
		{"when is a list", "rules:\n  - name: r\n    when: [a]\n    do: [{type: log}]\n", 3, 11, `rule "r": when: want an expression`},
		{"missing window", "rules:\n  - name: r\n    throttle: {by: [stream]}\n    do: [{type: log}]\n", 2, 5, "throttle: window is required"},
		{"zero window", "rules:\n  - name: r\n    throttle: {window: 0s}\n    do: [{type: log}]\n", 3, 24, "want a positive duration"},
		{"payload is not a throttle key", "rules:\n  - name: r\n    throttle: {by: [payload], window: 1m}\n    do: [{type: log}]\n", 3, 0, `throttle: by: unknown field "payload"`},
		{"inline step with an unknown setting", "rules:\n  - name: r\n    do:\n      - type: log\n        colour: red\n", 5, 9, `unknown key "colour"`},
		{"inline step with an unknown type", "rules:\n  - name: r\n    do:\n      - type: slak\n", 4, 15, `unknown action type "slak"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.Load(writeRules(t, tt.src), options(actionapi.Default(), nil))
			ds := yamlconf.Diagnostics(err)
			if len(ds) != 1 {
				t.Fatalf("got %v, want one diagnostic", err)
			}
			d := ds[0]
			if filepath.Base(d.File) != "rules.yaml" || d.Line != tt.line || (tt.col != 0 && d.Col != tt.col) || !strings.Contains(d.Msg, tt.want) {
				t.Errorf("diagnostic %s, want rules.yaml:%d:%d containing %q", d, tt.line, tt.col, tt.want)
			}
		})
	}
}

// A misspelt field in a condition is reported where it stands in the file,
// whatever YAML style the condition is written in.
func TestConditionPositions(t *testing.T) {
	tests := []struct {
		name string
		when string // the `when:` entry, indented for a rule; contains duraton once
		line int    // line of duraton within the file
		col  int    // 0: the column of duraton on that line
	}{
		{name: "plain", when: "    when: duraton < 10\n", line: 3},
		{name: "plain after other terms", when: "    when: kind == \"file\" && duraton < 10\n", line: 3},
		{name: "double quoted", when: "    when: \"kind == 'file' && duraton < 10\"\n", line: 3},
		{name: "single quoted", when: "    when: 'kind == \"file\" && duraton < 10'\n", line: 3},
		{name: "literal block, first line", when: "    when: |\n      duraton < 10\n        && kind == \"file\"\n", line: 4},
		{name: "literal block, second line", when: "    when: |\n      kind == \"file\"\n        && duraton < 10\n", line: 5},
		{name: "literal block, keep indicator", when: "    when: |+\n      kind == \"file\" &&\n      duraton < 10\n", line: 5},
		// Folding joins the lines, so the best place is the value itself.
		{name: "folded block", when: "    when: >\n      kind == \"file\" &&\n      duraton < 10\n", line: 3, col: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "rules:\n  - name: r\n" + tt.when + "    do:\n      - type: log\n"
			_, err := rules.Load(writeRules(t, src), options(actionapi.Default(), nil))
			ds := yamlconf.Diagnostics(err)
			if len(ds) != 1 {
				t.Fatalf("got %v, want one diagnostic", err)
			}
			col := tt.col
			if col == 0 {
				col = strings.Index(strings.Split(src, "\n")[tt.line-1], "duraton") + 1
			}
			d := ds[0]
			if d.Line != tt.line || d.Col != col || !strings.Contains(d.Msg, `rule "r": when: unknown name duraton`) {
				t.Errorf("diagnostic %s, want %d:%d\n%s", d, tt.line, col, src)
			}
		})
	}
}

func TestRuleFields(t *testing.T) {
	src := `rules:
  - name: full
    description: all fields
    when: kind == "file"
    enabled: true
    stop: true
    throttle:
      by: [domain, stream]
      window: 10m
    do:
      - type: log
      - type: log
        with: {message: "{{ .stream }}"}
  - name: off
    enabled: false
    do: [{type: log}]
`
	set, err := rules.Load(writeRules(t, src), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	r := set.Rules[0]
	if r.Name != "full" || r.Description != "all fields" || r.When != `kind == "file"` || !r.Enabled || !r.Stop || r.Line != 2 {
		t.Errorf("rule = %+v", r)
	}
	if r.Throttle == nil || !slices.Equal(r.Throttle.By, []string{"domain", "stream"}) || r.Throttle.Window != 10*time.Minute {
		t.Errorf("throttle = %+v", r.Throttle)
	}
	if len(r.Steps) != 2 || r.Steps[1].Index != 1 || r.Steps[1].Action != "full/do[1]" || r.Steps[1].Type != "log" {
		t.Errorf("steps = %+v %+v", r.Steps[0], r.Steps[1])
	}
	if off := set.Rules[1]; off.Enabled || off.Throttle != nil || off.Stop {
		t.Errorf("rule off = %+v", off)
	}
	if set.Summary() != "1 file(s), 0 action(s), 2 rule(s) (1 enabled)" {
		t.Errorf("Summary = %q", set.Summary())
	}
}

func TestHash(t *testing.T) {
	a := writeRules(t, "rules:\n  - name: a\n    do: [{type: log}]\n")
	b := writeRules(t, "rules:\n  - name: a\n    do: [{type: log}]\n")
	c := writeRules(t, "rules:\n  - name: b\n    do: [{type: log}]\n")
	hash := func(p string) string {
		s, err := rules.Load(p, options(actionapi.Default(), nil))
		if err != nil {
			t.Fatal(err)
		}
		s.Retire()
		return s.Hash
	}
	if hash(a) != hash(b) {
		t.Error("same content, different hash")
	}
	if hash(a) == hash(c) {
		t.Error("different content, same hash")
	}
	if len(hash(a)) != 16 {
		t.Errorf("hash %q, want 16 hex digits", hash(a))
	}
}

// A secret's value must not show in a diagnostic, even when an action
// quotes its settings in a plain error.
func TestDiagnosticsHideSecrets(t *testing.T) {
	reg, _ := isolated(t)
	src := "actions:\n  p:\n    type: probe\n    token: ${TOKEN}\n  bad:\n    type: log\n    level: ${TOKEN}\n"
	_, err := rules.Load(writeRules(t, src), options(reg, map[string]string{"TOKEN": "SEC-very-secret"}))
	if err == nil {
		t.Fatal("loaded a log action with a token for a level")
	}
	if strings.Contains(err.Error(), "SEC-very-secret") {
		t.Errorf("secret in diagnostics:\n%v", err)
	}
}

// expr's parser recurses once per parenthesis: a condition nested a
// million deep overflows the stack, a fatal error that no recover stops,
// so a bad save would kill the daemon on reload. It must be a diagnostic.
// The load runs in a child process so a crash fails this test only.
func TestDeeplyNestedConditionIsAnError(t *testing.T) {
	const n = 1_000_000
	if os.Getenv("RULES_DEEP_CONDITION_CHILD") == "1" {
		src := "rules:\n  - name: r\n    when: '" + strings.Repeat("(", n) + "true" + strings.Repeat(")", n) + "'\n    do: [{type: log}]\n"
		_, err := rules.Load(writeRules(t, src), options(actionapi.Default(), nil))
		if ds := yamlconf.Diagnostics(err); len(ds) != 1 || ds[0].Line != 3 {
			t.Fatalf("want one diagnostic on line 3, got %.300v", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDeeplyNestedConditionIsAnError$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RULES_DEEP_CONDITION_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("loading a deeply nested condition: %v\n%.1500s", err, out)
	}
}
