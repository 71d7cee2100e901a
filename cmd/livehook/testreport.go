package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/livehook/livehook/internal/textcut"
)

// How rule test results are shown: a line per test, and for a failure
// the expected and the fired side by side; JSON, one object per test;
// JUnit XML for CI.

var rowMarks = map[string]string{"ok": "ok", "differs": "!=", "missing": "--", "unexpected": "++"}

// printOutcome writes one test's result as text.
func printOutcome(w io.Writer, o testOutcome, explain bool) {
	status := "ok  "
	if !o.OK {
		status = "FAIL"
	}
	fmt.Fprintf(w, "%s %s:%d: %s (%.3fs)\n", status, o.File, o.Line, o.Name, o.Took.Seconds())
	if o.Error != "" {
		fmt.Fprintf(w, "       the timeline did not run: %s\n", o.Error)
	}
	if explain {
		printExplain(w, o.Explain)
	}
	if o.OK || o.Error != "" {
		return
	}
	printRows(w, o.Rows)
}

// printRows shows the expectations and the firings side by side.
func printRows(w io.Writer, rows []diffRow) {
	type cell struct{ left, right []string }
	cells := make([]cell, len(rows))
	width := len("expected")
	for i, r := range rows {
		c := &cells[i]
		if r.Expected != nil {
			c.left = append(c.left, r.Expected.text())
			for _, a := range r.Expected.e.sendOrder {
				c.left = append(c.left, fmt.Sprintf("  %s: contains %q", a, r.Expected.e.sends[a]))
			}
		} else {
			c.left = append(c.left, "(not expected)")
		}
		if r.Fired != nil {
			c.right = append(c.right, r.Fired.text())
			for _, s := range r.Fired.Sends {
				c.right = append(c.right, "  "+s.text())
			}
		} else {
			c.right = append(c.right, "(did not fire)")
		}
		for _, why := range r.Why {
			c.left = append(c.left, "  ! "+why)
		}
		for _, l := range c.left {
			width = max(width, utf8.RuneCountInString(l))
		}
	}
	width = min(width, 64)
	line := func(mark, left, right string) {
		pad := width - utf8.RuneCountInString(left)
		if pad < 0 {
			pad = 0
		}
		fmt.Fprintf(w, "  %-2s  %s%s | %s\n", mark, left, strings.Repeat(" ", pad), right)
	}
	line("", "expected", "fired")
	for i, r := range rows {
		c := cells[i]
		for k := range max(len(c.left), len(c.right)) {
			mark, left, right := "", "", ""
			if k == 0 {
				mark = rowMarks[r.Status]
			}
			if k < len(c.left) {
				left = c.left[k]
			}
			if k < len(c.right) {
				right = c.right[k]
			}
			line(mark, left, right)
		}
	}
}

func printExplain(w io.Writer, steps []explainStep) {
	for _, s := range steps {
		fmt.Fprintf(w, "  %-8s %s\n", s.At, s.Step)
		for _, f := range s.Fired {
			fmt.Fprintf(w, "  %-8s   fired: %s\n", "", f.text())
		}
		for _, st := range s.State {
			fmt.Fprintf(w, "  %-8s   %s\n", "", st)
		}
	}
}

// text is an expectation on one line.
func (x *expected) text() string {
	e := x.e
	var b strings.Builder
	if e.between {
		fmt.Fprintf(&b, "%s..%s", fmtOffset(e.at), fmtOffset(e.to))
	} else {
		b.WriteString(fmtOffset(e.at))
	}
	b.WriteString(" " + e.rule)
	if len(e.key) > 0 {
		b.WriteString(" " + keyText(e.key))
	}
	if e.count != nil {
		fmt.Fprintf(&b, " count=%d", *e.count)
	}
	if e.late != nil {
		fmt.Fprintf(&b, " late=%v", *e.late)
	}
	if len(e.causedBy) > 0 {
		b.WriteString(" by " + strings.Join(e.causedBy, ","))
	}
	return b.String()
}

// text is a firing on one line.
func (f *fired) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", f.At, f.Rule, f.keyText)
	if f.Count > 0 {
		fmt.Fprintf(&b, " count=%d", f.Count)
	}
	if f.Late {
		b.WriteString(" late")
	}
	if f.Shadow {
		b.WriteString(" (shadow: sends nothing)")
	}
	if len(f.CausedBy) > 0 {
		b.WriteString(" by " + strings.Join(f.CausedBy, ","))
	}
	return b.String()
}

// text is a planned delivery on one line: what it would send.
func (s sent) text() string {
	what := s.Text
	if s.Error != "" {
		what = "cannot render: " + s.Error
	}
	what = strings.ReplaceAll(what, "\n", `\n`)
	return fmt.Sprintf("%s (%s): %s", s.Action, s.Type, textcut.Truncate(what, 160))
}

// JUnit XML, the subset CI systems read: a suite per test file, a case
// per test, a failure with the side-by-side comparison.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// writeJUnit writes the outcomes, and the files that could not be read
// (their problems as file:line:col lines), to path.
func writeJUnit(path string, outcomes []testOutcome, broken map[string][]string) error {
	var doc junitSuites
	index := map[string]int{}
	suite := func(file string) *junitSuite {
		i, ok := index[file]
		if !ok {
			i = len(doc.Suites)
			index[file] = i
			doc.Suites = append(doc.Suites, junitSuite{Name: file})
		}
		return &doc.Suites[i]
	}
	var total float64
	for _, o := range outcomes {
		s := suite(o.File)
		c := junitCase{Name: o.Name, Classname: o.File, Time: fmt.Sprintf("%.3f", o.Took.Seconds())}
		switch {
		case o.Error != "":
			c.Error = &junitProblem{Message: "the timeline did not run", Text: o.Error}
			s.Errors++
		case !o.OK:
			var b strings.Builder
			printRows(&b, o.Rows)
			c.Failure = &junitProblem{Message: failureSummary(o.Rows), Text: b.String()}
			s.Failures++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
		total += o.Took.Seconds()
		s.Time = fmt.Sprintf("%.3f", total)
	}
	for file, problems := range broken {
		s := suite(file)
		s.Tests++
		s.Errors++
		s.Cases = append(s.Cases, junitCase{Name: "read " + file, Classname: file, Time: "0.000",
			Error: &junitProblem{Message: fmt.Sprintf("%d problem(s) in the test file", len(problems)), Text: strings.Join(problems, "\n")}})
	}
	for _, s := range doc.Suites {
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	out = append([]byte(xml.Header), append(out, '\n')...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	return nil
}

// failureSummary counts what went wrong in a test.
func failureSummary(rows []diffRow) string {
	n := map[string]int{}
	for _, r := range rows {
		n[r.Status]++
	}
	var parts []string
	for _, s := range []struct{ status, what string }{
		{"missing", "expected but did not fire"}, {"unexpected", "fired unexpected"}, {"differs", "fired otherwise than expected"},
	} {
		if n[s.status] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s.status], s.what))
		}
	}
	return strings.Join(parts, ", ")
}
