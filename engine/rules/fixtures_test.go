package rules_test

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/yamlconf"
)

var update = flag.Bool("update", false, "rewrite testdata/rules/invalid/*.golden from the current diagnostics")

const fixtureDir = "../../testdata/rules"

// want is one expected diagnostic: a `# want: "substring"` comment expects
// a diagnostic on its own line whose message contains the substring.
type want struct {
	file string
	line int
	text string
}

func (w want) String() string { return fmt.Sprintf("%s:%d: %q", filepath.Base(w.file), w.line, w.text) }

// fixtureFiles lists the rules files a fixture entry loads: the file
// itself, or the *.yaml/*.yml files of a directory, as Load picks them.
func fixtureFiles(t *testing.T, path string) []string {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsDir() {
		return []string{path}
	}
	var out []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(filepath.Join(path, pat))
		for _, f := range m {
			if !strings.HasPrefix(filepath.Base(f), ".") {
				out = append(out, f)
			}
		}
	}
	return out
}

// parseWants reads the `# want:` comments of a fixture. One comment may
// hold several quoted strings. Inside a `when: |` block the comment sits
// behind an expr `//` comment, so it is found anywhere on the line.
func parseWants(t *testing.T, file string) []want {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []want
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		_, rest, ok := strings.Cut(sc.Text(), "# want:")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		for rest != "" {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("%s:%d: bad want comment: %v", file, line, err)
			}
			s, _ := strconv.Unquote(q)
			out = append(out, want{file: filepath.Clean(file), line: line, text: s})
			rest = strings.TrimSpace(rest[len(q):])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func fixtureEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml") {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	return out
}

func TestValidFixtures(t *testing.T) {
	dir := filepath.Join(fixtureDir, "valid")
	for _, name := range fixtureEntries(t, dir) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			for _, f := range fixtureFiles(t, path) {
				if ws := parseWants(t, f); len(ws) > 0 {
					t.Fatalf("a valid fixture expects diagnostics: %v", ws)
				}
			}
			set, err := rules.Load(path, options(actionapi.Default(), nil))
			if err != nil {
				t.Fatalf("load:\n%v", err)
			}
			defer set.Retire()
			if len(set.Rules) == 0 {
				t.Error("no rules loaded")
			}
			for _, r := range set.Rules {
				if len(r.Steps) == 0 {
					t.Errorf("rule %q has no steps", r.Name)
				}
			}
		})
	}
}

// TestInvalidFixtures loads each fixture under invalid/ and checks that
// every `# want:` line got its diagnostic and that no other line got one.
func TestInvalidFixtures(t *testing.T) {
	dir := filepath.Join(fixtureDir, "invalid")
	for _, name := range fixtureEntries(t, dir) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			var wants []want
			for _, f := range fixtureFiles(t, path) {
				wants = append(wants, parseWants(t, f)...)
			}
			if len(wants) == 0 {
				t.Fatal("fixture has no # want: comment")
			}
			set, err := rules.Load(path, options(actionapi.Default(), nil))
			if err == nil {
				set.Retire()
				t.Fatalf("loaded without error; want %v", wants)
			}
			ds := yamlconf.Diagnostics(err)
			if ds == nil {
				t.Fatalf("error without diagnostics: %v", err)
			}
			matched := make([]bool, len(ds))
			for _, w := range wants {
				found := false
				for i, d := range ds {
					if filepath.Clean(d.File) == w.file && d.Line == w.line && strings.Contains(d.Msg, w.text) {
						matched[i], found = true, true
					}
				}
				if !found {
					t.Errorf("no diagnostic %v; got:\n%v", w, err)
				}
			}
			for i, d := range ds {
				if matched[i] {
					continue
				}
				onWantLine := false
				for _, w := range wants {
					onWantLine = onWantLine || (filepath.Clean(d.File) == w.file && d.Line == w.line)
				}
				if !onWantLine {
					t.Errorf("unexpected diagnostic %s", d)
				}
			}
			if t.Failed() {
				return
			}
			checkGolden(t, path, ds)
		})
	}
}

// checkGolden compares the diagnostics of fixture path with path's .golden
// file, if it has one: the exact, sorted file:line:col: message lines.
func checkGolden(t *testing.T, path string, ds yamlconf.List) {
	golden := strings.TrimSuffix(path, filepath.Ext(path)) + ".golden"
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s:%d:%d: %s\n", filepath.Base(d.File), d.Line, d.Col, d.Msg)
	}
	if *update {
		if _, err := os.Stat(golden); err == nil {
			if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want, err := os.ReadFile(golden)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("diagnostics differ from %s (rerun with -update if the change is intended):\ngot:\n%s\nwant:\n%s", golden, b.String(), want)
	}
}

// multi.yaml holds independent mistakes in actions, conditions, templates,
// throttles and steps: one load must report them all.
func TestMultiReportsEveryError(t *testing.T) {
	path := filepath.Join(fixtureDir, "invalid", "multi.yaml")
	wants := parseWants(t, path)
	_, err := rules.Load(path, options(actionapi.Default(), nil))
	ds := yamlconf.Diagnostics(err)
	if len(wants) < 5 {
		t.Fatalf("multi.yaml has %d mistakes, want at least 5", len(wants))
	}
	if len(ds) != len(wants) {
		t.Errorf("got %d diagnostics for %d mistakes:\n%v", len(ds), len(wants), err)
	}
	if _, err := os.Stat(filepath.Join(fixtureDir, "invalid", "multi.golden")); err != nil {
		t.Errorf("multi.golden: %v", err)
	}
	for i := 1; i < len(ds); i++ {
		if a, b := ds[i-1], ds[i]; a.Line > b.Line || (a.Line == b.Line && a.Col > b.Col) {
			t.Errorf("diagnostics not sorted: %s before %s", a, b)
		}
	}
}
