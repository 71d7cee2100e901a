package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/actionapi"
)

var (
	exampleRules = filepath.Join("..", "..", "rules.example.yaml")
	exampleTests = filepath.Join("..", "..", "tests")
)

// The project's own rules ship with rule tests, and CI runs them here.
func TestExampleRuleTestsPass(t *testing.T) {
	for _, run := range []struct {
		args  []string
		tests int
	}{
		{[]string{"test", exampleRules, exampleTests}, 8}, // RULES, then a folder of tests
		{[]string{"test", exampleTests}, 8},               // the tests name their rules
		{[]string{"test", filepath.Join(exampleTests, "absence.test.yaml"), filepath.Join(exampleTests, "count-digest.test.yaml")}, 6},
	} {
		args := run.args
		stdout, stderr, code := runCLI(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, fmt.Sprintf("%d test(s), 0 failed", run.tests)) || strings.Contains(stdout, "FAIL") {
			t.Errorf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
}

// Changing a window in the rules fails the tests that depend on it, and
// only those, saying what changed.
func TestChangedWithinFailsTheRightTests(t *testing.T) {
	data, err := os.ReadFile(exampleRules)
	must(t, err)
	changed := strings.Replace(string(data), "within: 6h30m ", "within: 6h ", 1)
	if changed == string(data) {
		t.Fatal("rules.example.yaml has no started-without-file within: 6h30m to change")
	}
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, changed)
	stdout, _, code := runCLI(t, nil, "test", rulesPath, exampleTests)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stdout)
	}
	var failed []string
	for _, m := range regexp.MustCompile(`(?m)^FAIL \S+: (.*) \(`).FindAllStringSubmatch(stdout, -1) {
		failed = append(failed, m[1])
	}
	want := []string{
		"start without file fires after 6h30m, survives a restart; a file cancels room7",
		"an overdue timer fires late on start-up",
		"a timer overdue beyond the outage tolerance is discarded",
	}
	if !slices.Equal(failed, want) {
		t.Errorf("failed %q, want %q:\n%s", failed, want, stdout)
	}
	for _, line := range []string{
		// the expectation beside the firing, and what differs
		`!=  6h30m started-without-file stream=room42 late=false by s42`,
		`| 6h started-without-file app=live domain=play.example.com stream=room42 by s42`,
		`! at: want 6h30m, fired at 6h`,
		`|   alarm (log): room42: no file 6h0m0s after the recording started`,
		// strict: a firing nothing expects
		`++  (not expected) | 6h started-without-file`,
		"8 test(s), 3 failed",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("output lacks %q:\n%s", line, stdout)
		}
	}
}

const ruleTestRules = `actions:
  pager:
    type: log
    message: "{{ .stream }}"
rules:
  - name: started-without-file
    when: event == "record_started"
    expect: { match: kind == "file", within: 30m }
    do: [ { action: pager, with: { message: "{{ .key.stream }}: no file {{ .waited }}{{ if .late }} (late){{ end }}" } } ]
  - name: error-burst
    when: event == "record_error"
    count: { at_least: 3, within: 10m }
    do: [ { action: pager, with: { message: "{{ .count }} errors on {{ .key.stream }}" } } ]
`

// ruleTestDir writes the rules above and a test file; it returns the
// paths of both.
func ruleTestDir(t *testing.T, tests string) (rules, file string) {
	t.Helper()
	dir := t.TempDir()
	rules, file = filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "t.test.yaml")
	writeFile(t, rules, ruleTestRules)
	writeFile(t, file, "rules: rules.yaml\nstart: 2026-11-27T10:00:00+08:00\ndefaults: {domain: play.example.com, app: live, stream: room42}\ntests:\n"+tests)
	return rules, file
}

func TestRuleTestTimelines(t *testing.T) {
	for _, tc := range []struct {
		name, tests string
		pass        bool
		output      []string
	}{
		{"a restart with an overdue timer fires late", `
  - name: late
    until: 2h
    timeline:
      - {at: 0s, event: {event: record_started}}
      - {at: 10m, restart: {down_for: 40m}}
    expect:
      - {rule: started-without-file, at: 50m, late: true, sends: {pager: {contains: "room42: no file 30m0s (late)"}}}
`, true, nil},
		{"a restart within the deadline is not late", `
  - name: on time
    until: 2h
    timeline:
      - {at: 0s, event: {event: record_started}}
      - {at: 10m, restart: true}
    expect:
      - {rule: started-without-file, at: 30m, late: false}
`, true, nil},
		{"a restart beyond the outage tolerance discards the timer", `
  - name: discarded
    until: 5h
    timeline:
      - {at: 0s, event: {event: record_started}}
      - {at: 10m, restart: {down_for: 3h}}
    expect: []
`, true, nil},
		{"retries count once", `
  - name: retried
    until: 1h
    timeline:
      - {at: 1m, id: e1, event: {event: record_error}}
      - {at: 1m1s, retry_of: e1, repeat: {count: 4, every: 1s}}
      - {at: 2m, event: {event: record_error}}
    expect: []
`, true, nil},
		{"the same body at another second is another callback", `
  - name: three errors
    timeline:
      - {at: 1m, repeat: {count: 3, every: 1s}, event: {event: record_error}}
    expect:
      - {rule: error-burst, at: 1m2s, count: 3, sends: {pager: {contains: "3 errors on room42"}}}
`, true, nil},
		{"between takes a firing inside the range", `
  - name: between
    until: 1h
    timeline:
      - {at: 0s, event: {event: record_started}}
    expect:
      - {rule: started-without-file, between: [20m, 40m], key: {stream: room42}}
`, true, nil},
		{"between refuses one outside", `
  - name: too early
    until: 1h
    timeline:
      - {at: 0s, event: {event: record_started}}
    expect:
      - {rule: started-without-file, between: [31m, 40m]}
`, false, []string{"!=  31m..40m started-without-file", "! between: want 31m to 40m, fired at 30m"}},
		{"a firing not expected fails", `
  - name: strict
    until: 1h
    timeline:
      - {at: 0s, event: {event: record_started, stream: room7}}
      - {at: 0s, event: {event: record_started}}
    expect:
      - {rule: started-without-file, at: 30m, key: {stream: room42}}
`, false, []string{"ok  30m started-without-file stream=room42", "++  (not expected)", "| 30m started-without-file app=live domain=play.example.com stream=room7"}},
		{"an expected firing that does not come fails", `
  - name: missing
    timeline:
      - {at: 0s, event: {event: record_error}}
    expect:
      - {rule: error-burst, at: 0s}
`, false, []string{"--  0s error-burst", "| (did not fire)"}},
		{"a wrong key, count, cause or text fails", `
  - name: wrong
    timeline:
      - {at: 1m, id: first, event: {event: record_error}}
      - {at: 2m, event: {event: record_error}}
      - {at: 3m, id: third, event: {event: record_error}}
    expect:
      - {rule: error-burst, at: 3m, key: {stream: room7}, count: 2, caused_by: [first], sends: {pager: {contains: "2 errors"}}}
`, false, []string{"! key: stream: want room7, fired for room42", "! count: want 2, fired with 3",
			"! caused_by: want first among them, fired by third", "! sends: pager: sends something else"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, file := ruleTestDir(t, tc.tests)
			stdout, stderr, code := runCLI(t, nil, "test", rules, file)
			if (code == 0) != tc.pass {
				t.Fatalf("exit %d, want the test to pass=%v:\n%s%s", code, tc.pass, stdout, stderr)
			}
			for _, want := range tc.output {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

// Single-event rules are tested the same way, on fixtures with set:.
func TestRuleTestOfSingleEventRules(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.test.yaml")
	fixture, err := filepath.Abs(filepath.Join("..", "..", "testdata", "events", "file_short_m3u8.json"))
	must(t, err)
	writeFile(t, file, `tests:
  - name: a short file
    timeline:
      - {at: 0s, file: `+fixture+`, set: {stream: cam9}}
    expect:
      - {rule: short-recording, at: 0s, key: {stream: cam9},
         sends: {"short-recording/do[0]": {contains: "short file record/live/room42/0_2024-05-01-20:00:03_2024-05-01-20:00:08.m3u8 (4.5s)"}}}
`)
	if stdout, stderr, code := runCLI(t, nil, "test", exampleRules, file); code != 0 {
		t.Errorf("exit %d:\n%s%s", code, stdout, stderr)
	}
}

func TestRuleTestFileMistakesArePositioned(t *testing.T) {
	rules, file := ruleTestDir(t, `  - name: mistakes
    until: 10x
    timeline:
      - {at: 2026-11-27T10:00:00Z, event: {event: record_started}}
      - {at: 1m, retry_of: nothere}
      - {at: 2m, evnt: {event: record_error}}
      - {at: 3m, id: a, event: {event: record_error}, repeat: {count: 2, every: 1m}}
    expect:
      - {rule: started-without-fil, at: 30m}
      - {rule: error-burst, at: 5m, key: {streem: room42}, cuont: 3}
      - {rule: error-burst, at: 1h, sends: {oncall: {contains: x}}, caused_by: [b]}
      - {rule: started-without-file, at: 5m, count: 1}
`)
	stdout, _, code := runCLI(t, nil, "test", rules, file)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stdout)
	}
	for _, want := range []string{
		`:6:12: until: "10x" is not an offset from the start such as 0s, 90s or 1h30m`,
		`:8:14: at: "2026-11-27T10:00:00Z" is not an offset from the start such as 0s, 90s or 1h30m`,
		`:9:28: retry_of: no item of this timeline has id "nothere"`,
		`:10:9: a timeline item: want exactly one of event, file, retry_of and restart`,
		`:10:18: unknown key "evnt" (want one of at, id, event, file, set, retry_of, repeat, restart, source)`,
		`:11:22: id: names one callback, and repeat sends several`,
		`:13:41: the timeline ends at 4m: nothing can fire at 30m (until: moves the end)`,
		`:14:60: unknown key "cuont" (want one of rule, at, between, key, count, late, caused_by, sends)`,
		`:15:81: caused_by: no item of this timeline has id "b"`,
	} {
		if !strings.Contains(stdout, file+want) {
			t.Errorf("output lacks %q:\n%s", file+want, stdout)
		}
	}
	// Once the file reads, what it says of the rules is checked.
	_, file = ruleTestDir(t, `  - name: mistakes about the rules
    timeline:
      - {at: 0s, event: {event: record_error}}
    expect:
      - {rule: started-without-fil, at: 0s}
      - {rule: error-burst, at: 0s, key: {streem: room42}}
      - {rule: error-burst, at: 0s, sends: {oncall: {contains: x}}}
      - {rule: started-without-file, at: 0s, count: 1}
`)
	stdout, _, code = runCLI(t, nil, "test", rules, file)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stdout)
	}
	for _, want := range []string{
		`:9:16: unknown rule "started-without-fil" (the rules are started-without-file, error-burst)`,
		`:10:43: key: rule "error-burst" is keyed by domain, app, stream, not streem`,
		`:11:45: sends: rule "error-burst" does not send to "oncall" (its steps: pager)`,
		`:12:53: count: rule "started-without-file" counts nothing: only count, session and digest rules fire with a count`,
	} {
		if !strings.Contains(stdout, file+want) {
			t.Errorf("output lacks %q:\n%s", file+want, stdout)
		}
	}
}

func TestRuleTestExplainShowsACountsTimes(t *testing.T) {
	rules, file := ruleTestDir(t, `  - name: explained
    until: 30m
    timeline:
      - {at: 1m, event: {event: record_error}}
      - {at: 4m, event: {event: record_error}}
      - {at: 12m, event: {event: record_error}}
      - {at: 0s, event: {event: record_started}}
    expect:
      - {rule: started-without-file, at: 30m}
`)
	stdout, stderr, code := runCLI(t, nil, "test", "--explain", rules, file)
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"started-without-file app=live domain=play.example.com stream=room42: waiting since 0s, due 30m",
		"error-burst app=live domain=play.example.com stream=room42: 2 of 3 within 10m: [1m 4m]",
		"error-burst app=live domain=play.example.com stream=room42: 2 of 3 within 10m: [4m 12m]",
		"error-burst app=live domain=play.example.com stream=room42: 0 of 3 within 10m: [], out of the window [4m 12m]",
		"30m      timers due",
		"fired: 30m started-without-file app=live domain=play.example.com stream=room42 by line 11",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("explain lacks %q:\n%s", want, stdout)
		}
	}
}

func TestRuleTestRunJSONAndJUnit(t *testing.T) {
	rules, file := ruleTestDir(t, `  - name: passes
    timeline:
      - {at: 0s, event: {event: record_error}}
    expect: []
  - name: fails & <escapes>
    timeline:
      - {at: 0s, event: {event: record_error}}
    expect:
      - {rule: error-burst, at: 0s}
  - name: also passes
    timeline: []
    expect: []
`)
	stdout, _, code := runCLI(t, nil, "test", "--run", "passes$", rules, file)
	if code != 0 || !strings.Contains(stdout, "2 test(s), 0 failed") || strings.Contains(stdout, "fails") {
		t.Errorf("--run: exit %d:\n%s", code, stdout)
	}

	stdout, _, code = runCLI(t, nil, "test", "--json", rules, file)
	if code != 1 {
		t.Errorf("--json: exit %d, want 1", code)
	}
	var outcomes []testOutcome
	dec := json.NewDecoder(strings.NewReader(stdout))
	for dec.More() {
		var o testOutcome
		must(t, dec.Decode(&o))
		outcomes = append(outcomes, o)
	}
	if len(outcomes) != 3 || !outcomes[0].OK || outcomes[1].OK || len(outcomes[1].Rows) != 1 ||
		outcomes[1].Rows[0].Status != "missing" || outcomes[1].Rows[0].Expected.At != "0s" {
		t.Errorf("--json: %+v", outcomes)
	}

	junit := filepath.Join(t.TempDir(), "out.xml")
	if _, _, code := runCLI(t, nil, "test", "--junit", junit, rules, file); code != 1 {
		t.Errorf("--junit: exit %d, want 1", code)
	}
	data, err := os.ReadFile(junit)
	must(t, err)
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("JUnit output does not parse: %v\n%s", err, data)
	}
	if doc.Tests != 3 || doc.Failures != 1 || len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != 3 {
		t.Fatalf("JUnit: %+v", doc)
	}
	c := doc.Suites[0].Cases[1]
	if c.Name != "fails & <escapes>" || c.Classname != file || c.Failure == nil ||
		c.Failure.Message != "1 expected but did not fire" || !strings.Contains(c.Failure.Text, "--  0s error-burst") {
		t.Errorf("JUnit failing case: %+v", c)
	}
	if doc.Suites[0].Cases[0].Failure != nil || doc.Suites[0].Cases[2].Failure != nil {
		t.Errorf("JUnit: passing cases carry failures: %+v", doc.Suites[0].Cases)
	}

	// A test file with mistakes is a failing case too, so CI shows it.
	_, broken := ruleTestDir(t, "  - name: x\n    timeline: []\n    expect: [{rule: nope, at: 0s}]\n")
	if _, _, code := runCLI(t, nil, "test", "--junit", junit, rules, broken); code != 1 {
		t.Errorf("--junit of a broken file: exit %d, want 1", code)
	}
	data, err = os.ReadFile(junit)
	must(t, err)
	doc = junitSuites{}
	must(t, xml.Unmarshal(data, &doc))
	if doc.Errors != 1 || len(doc.Suites) != 1 || doc.Suites[0].Cases[0].Error == nil ||
		!strings.Contains(doc.Suites[0].Cases[0].Error.Text, `unknown rule "nope"`) {
		t.Errorf("JUnit of a broken file: %+v", doc)
	}
}

// Event files keep working beside test files, and a folder of rules is
// not mistaken for a folder of tests.
func TestTestTellsEventFilesFromTestFiles(t *testing.T) {
	ev := filepath.Join("..", "..", "testdata", "events", "record_error_detail.json")
	stdout, _, code := runCLI(t, nil, "test", exampleRules, ev, filepath.Join(exampleTests, "count-digest.test.yaml"))
	if code != 0 || !strings.Contains(stdout, "rule recording-failed") || !strings.Contains(stdout, "2 test(s), 0 failed") {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
	if _, stderr, code := runCLI(t, nil, "test", exampleTests, ev); code != 2 || !strings.Contains(stderr, "event files need a rules PATH first") {
		t.Errorf("an event file without rules: exit %d, %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, nil, "test", exampleRules, t.TempDir()); code != 2 || !strings.Contains(stderr, "a folder with no *.test.yaml files") {
		t.Errorf("an empty folder: exit %d, %q", code, stderr)
	}
}

func TestRuleTestRefusesCallbacksWhileDown(t *testing.T) {
	rules, file := ruleTestDir(t, `  - name: down
    timeline:
      - {at: 0s, event: {event: record_started}}
      - {at: 10m, restart: {down_for: 40m}}
      - {at: 30m, event: {event: record_error}}
      - {at: 50m, event: {event: record_error}}
    expect: []
`)
	stdout, _, code := runCLI(t, nil, "test", rules, file)
	want := file + ":9:14: at 30m livehook is down (restart at line 8, down until 50m): a callback sent then is lost, as Aliyun retries for seconds only"
	if code != 1 || !strings.Contains(stdout, want) || strings.Contains(stdout, ":10:") {
		t.Errorf("exit %d, want only %q:\n%s", code, want, stdout)
	}
}

func TestPlanTextKeepsWhatWasWritten(t *testing.T) {
	got := planText(&actionapi.Plan{Body: map[string]any{"text": "<at user_id=\"all\">所有人</at> & more"}})
	if got != `{"text":"<at user_id=\"all\">所有人</at> & more"}` {
		t.Errorf("planText = %s", got)
	}
}
