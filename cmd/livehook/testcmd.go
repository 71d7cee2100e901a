package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/engine/store"
)

// testReport is what `livehook test --json` prints for one event file.
type testReport struct {
	File    string       `json:"file"`
	Event   *event.Event `json:"event,omitempty"`
	Error   string       `json:"error,omitempty"` // the event could not be read or decoded
	Matches []testMatch  `json:"matches"`
	Errors  []string     `json:"errors,omitempty"` // conditions that failed at run time
}

type testMatch struct {
	Rule    string       `json:"rule"`
	Actions []testAction `json:"actions"`
}

type testAction struct {
	Action string          `json:"action"`
	Type   string          `json:"type"`
	Plan   *actionapi.Plan `json:"plan,omitempty"`
	Error  string          `json:"error,omitempty"`
}

func testCmd(args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("test", "test [--json] [--source NAME] PATH EVENT.json...\n\nShow, for each event file, which rules match and exactly what each action\nwould send: rendered templates, target, method. Nothing is sent. Throttles\nare not applied.", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per event")
	name := fs.String("source", event.SourceRecord, "decode the events as coming from `NAME`: "+sourceNames())
	var plugins string
	pluginsFlag(fs, &plugins, getenv)
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return &exitError{code: 2, msg: "test: want a rules PATH and at least one EVENT.json"}
	}
	src, err := lookupSource(sourceapi.Default(), *name)
	if err != nil {
		return &exitError{code: 2, msg: "test: " + err.Error()}
	}
	set, err := loadForCLI(fs.Arg(0), getenv, plugins)
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
	for i, file := range fs.Args()[1:] {
		rep := testEvent(&m, set, file, src, *name, i+1)
		failed = failed || rep.Error != ""
		if *asJSON {
			if err := json.NewEncoder(stdout).Encode(rep); err != nil {
				return err
			}
			continue
		}
		printTestReport(stdout, rep)
	}
	if len(temporal) > 0 && !*asJSON {
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
	var ev *event.Event
	req, err := src.FromFile(name, body)
	if err == nil {
		ev, err = src.Decode(req)
	}
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	set.MapDomain(ev) // as the daemon does when it accepts the event
	ev.ID = fmt.Sprintf("test-%d", n)
	ev.ReceivedAt = time.Now().UTC().Truncate(time.Second)
	rep.Event = ev
	matched, errs := m.Match(set, ev)
	for _, e := range errs {
		rep.Errors = append(rep.Errors, set.Secrets.Redact(e.Error()))
	}
	for _, r := range matched {
		tm := testMatch{Rule: r.Name, Actions: []testAction{}}
		for _, s := range r.Steps {
			in := actionapi.Input{Event: ev, Rule: r.Name, DeliveryID: store.JobID(ev.ID, r.Name, s.Index, 0)}
			ta := testAction{Action: s.Action, Type: s.Type}
			if plan, err := s.Step.Plan(in); err != nil {
				ta.Error = set.Secrets.Redact(err.Error())
			} else {
				ta.Plan = &plan
			}
			tm.Actions = append(tm.Actions, ta)
		}
		rep.Matches = append(rep.Matches, tm)
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
