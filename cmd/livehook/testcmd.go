package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
)

// testReport is what `livehook test --json` prints for one event file.
type testReport struct {
	File    string       `json:"file"`
	Event   *event.Event `json:"event,omitempty"`
	Error   string       `json:"error,omitempty"` // the event could not be read or decoded
	Matches []testMatch  `json:"matches"`
	Errors  []string     `json:"errors,omitempty"` // conditions that failed at run time
	// Reply is what the daemon answers a callback that asks a question
	// (on-demand recording), as its sender reads it.
	Reply any `json:"reply,omitempty"`
}

type testMatch struct {
	Rule    string               `json:"rule"`
	Actions []engine.PlannedStep `json:"actions"`
}

func testCmd(args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("test", `test [flags] RULES EVENT.json|TESTFILE|DIR...
       livehook test [flags] TESTFILE|DIR...

With event files (JSON callbacks): show, for each, which rules match and
exactly what each action would send: rendered templates, target, method.
Throttles are not applied.

With rule test files (YAML with tests:, or a folder of *.test.yaml): run
each test's timeline on a virtual clock through the engine serve runs, and
check that exactly the expected firings happen; a failure shows the
expected and the fired side by side and exits 1. Without RULES, each test
file names its rules with rules:.

Nothing is sent.`, stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per event or test")
	name := fs.String("source", event.SourceRecord, "decode the event files as coming from `NAME`: "+sourceNames())
	runRE := fs.String("run", "", "run only the tests whose name matches `REGEX`")
	junit := fs.String("junit", "", "also write the test results as JUnit XML to `FILE`")
	explain := fs.Bool("explain", false, "show each key's state after each timeline step")
	var plugins string
	pluginsFlag(fs, &plugins, getenv)
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return &exitError{code: 2, msg: "test: want a rules PATH and event files, or rule test files"}
	}
	rulesPath, rest := fs.Arg(0), fs.Args()[1:]
	if isTestArg(rulesPath) {
		rulesPath, rest = "", fs.Args()
	} else if len(rest) == 0 {
		fs.Usage()
		return &exitError{code: 2, msg: "test: want at least one EVENT.json or rule test file after the rules PATH"}
	}
	var tests, events []string
	for _, a := range rest {
		switch {
		case isDir(a):
			found := testFilesIn(a)
			if len(found) == 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("test: %s: a folder with no *.test.yaml files", a)}
			}
			tests = append(tests, found...)
		case isTestFile(a):
			tests = append(tests, a)
		case rulesPath == "":
			return &exitError{code: 2, msg: fmt.Sprintf("test: %s is no rule test file (YAML with tests:); event files need a rules PATH first", a)}
		default:
			events = append(events, a)
		}
	}
	var re *regexp.Regexp
	if *runRE != "" {
		var err error
		if re, err = regexp.Compile(*runRE); err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("test: --run: %v", err)}
		}
	}
	var errs []error
	if len(events) > 0 {
		src, err := lookupSource(sourceapi.Default(), *name)
		if err != nil {
			return &exitError{code: 2, msg: "test: " + err.Error()}
		}
		errs = append(errs, testEvents(rulesPath, events, src, *name, *asJSON, plugins, stdout, getenv))
	}
	if len(tests) > 0 {
		tr := testRun{rules: rulesPath, files: tests, run: re, junit: *junit, explain: *explain, json: *asJSON,
			plugins: plugins, getenv: getenv, stdout: stdout}
		errs = append(errs, tr.runAll())
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// isTestArg reports whether a path is a rule test file, or a folder of them.
func isTestArg(path string) bool {
	if isDir(path) {
		return len(testFilesIn(path)) > 0
	}
	return isTestFile(path)
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// testEvents shows what the rules would do with each event file.
func testEvents(rulesPath string, files []string, src *sourceapi.Source, name string, asJSON bool, plugins string,
	stdout io.Writer, getenv func(string) (string, bool)) error {
	set, err := loadForCLI(rulesPath, getenv, plugins)
	if err != nil {
		return reportLoadError(stdout, err)
	}
	defer set.Retire()
	var m rules.Matcher
	failed := false
	var temporal []string
	for _, r := range set.Rules {
		if r.Temporal != nil {
			temporal = append(temporal, r.Name)
		}
	}
	for i, file := range files {
		rep := testEvent(&m, set, file, src, name, i+1)
		failed = failed || rep.Error != ""
		if asJSON {
			if err := json.NewEncoder(stdout).Encode(rep); err != nil {
				return err
			}
			continue
		}
		printTestReport(stdout, rep)
	}
	if len(temporal) > 0 && !asJSON {
		fmt.Fprintf(stdout, "not evaluated: %d rule(s) over time (%s) need a timeline of events (a rule test file); one event file alone cannot show what they do\n",
			len(temporal), strings.Join(temporal, ", "))
	}
	if failed {
		return &exitError{code: 1, msg: "some events could not be read"}
	}
	return nil
}

// testEvent decodes the event file as intake would a callback from the
// source name, and shows what the rules would do with it.
func testEvent(m *rules.Matcher, set *rules.Set, file string, src *sourceapi.Source, name string, n int) testReport {
	rep := testReport{File: file, Matches: []testMatch{}}
	body, err := os.ReadFile(file)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	ev, err := src.DecodeFile(name, body)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	set.MapDomain(ev) // as the daemon does when it accepts the event
	ev.ID = fmt.Sprintf("test-%d", n)
	ev.ReceivedAt = time.Now().UTC().Truncate(time.Second)
	rep.Event = ev
	if a, asks, err := set.Answer(ev); asks { // decided as the daemon decides it on accepting the event
		ev.Answer = a
		rep.Reply = src.Answer(ev, ev.ID)
		if err != nil {
			rep.Errors = append(rep.Errors, set.Secrets.Redact(err.Error()))
		}
	}
	matched, errs := m.Match(set, ev)
	for _, e := range errs {
		rep.Errors = append(rep.Errors, set.Secrets.Redact(e.Error()))
	}
	for _, r := range matched {
		rep.Matches = append(rep.Matches, testMatch{Rule: r.Name, Actions: engine.PlanMatch(set, r, ev)})
	}
	return rep
}

func printTestReport(w io.Writer, rep testReport) {
	if rep.Error != "" {
		fmt.Fprintf(w, "%s: error: %s\n\n", rep.File, rep.Error)
		return
	}
	ev := rep.Event
	fmt.Fprintf(w, "%s: %s event %s/%s/%s: %d rule(s) match\n", rep.File, ev.Kind, ev.Domain, ev.App, ev.Stream, len(rep.Matches))
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "  condition error: %s\n", e)
	}
	if rep.Reply != nil {
		reply, _ := json.Marshal(rep.Reply)
		by := "rule " + ev.Answer.Rule
		if ev.Answer.Default {
			by = "no answer rule holds: the default"
		}
		if ev.Answer.Error != "" {
			by = "an answer rule failed: the default"
		}
		fmt.Fprintf(w, "  answer: %s (%s)\n", reply, by)
	}
	for _, m := range rep.Matches {
		fmt.Fprintf(w, "  rule %s\n", m.Rule)
		for _, a := range m.Actions {
			fmt.Fprintf(w, "    %s (%s)\n", a.Action, a.Type)
			if a.Error != "" {
				fmt.Fprintf(w, "      error: %s\n", a.Error)
				continue
			}
			p := a.Plan
			fmt.Fprintf(w, "      target: %s\n", strings.TrimSpace(p.Method+" "+p.Target))
			for k, v := range p.Info {
				fmt.Fprintf(w, "      %s: %v\n", k, v)
			}
			if p.Body != nil {
				fmt.Fprintf(w, "      body: %s\n", indentBody(p.Body))
			}
		}
	}
	fmt.Fprintln(w)
}

// indentBody shows a string as is and anything else as indented JSON.
func indentBody(b any) string {
	if s, ok := b.(string); ok {
		return strings.ReplaceAll(s, "\n", "\n        ")
	}
	out, err := json.MarshalIndent(b, "        ", "  ")
	if err != nil {
		return fmt.Sprint(b)
	}
	return string(out)
}
