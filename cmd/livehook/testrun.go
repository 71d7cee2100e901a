package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/engine/yamlconf"
)

// Running a rule test: its timeline through the engine on a virtual
// clock, then what fired matched against what was expected. Strict: a
// firing no expectation takes fails the test as a missing one does.

// testOutcome is one test's result, for every output format.
type testOutcome struct {
	File    string        `json:"file"`
	Name    string        `json:"test"`
	Line    int           `json:"line"`
	OK      bool          `json:"ok"`
	Error   string        `json:"error,omitempty"` // the timeline could not run
	Rows    []diffRow     `json:"rows"`
	Explain []explainStep `json:"explain,omitempty"`
	Took    time.Duration `json:"-"`
}

// diffRow is one line of the comparison: an expectation and the firing
// it took, or one of them alone.
type diffRow struct {
	Status   string    `json:"status"` // ok, differs, missing, unexpected
	Expected *expected `json:"expected,omitempty"`
	Fired    *fired    `json:"fired,omitempty"`
	Why      []string  `json:"why,omitempty"` // what differs
}

// expected is an expectation as reports show it.
type expected struct {
	Rule     string            `json:"rule"`
	At       string            `json:"at,omitempty"`
	Between  []string          `json:"between,omitempty"`
	Key      map[string]string `json:"key,omitempty"`
	Count    *int              `json:"count,omitempty"`
	Late     *bool             `json:"late,omitempty"`
	CausedBy []string          `json:"caused_by,omitempty"`
	Sends    map[string]string `json:"sends,omitempty"`
	e        *expectation
}

// fired is a firing as reports show it.
type fired struct {
	At       string            `json:"at"`
	Rule     string            `json:"rule"`
	Key      map[string]string `json:"key,omitempty"`
	Count    int               `json:"count,omitempty"`
	Late     bool              `json:"late,omitempty"`
	CausedBy []string          `json:"caused_by"` // timeline labels: ids, or "line N"
	Shadow   bool              `json:"shadow,omitempty"`
	Sends    []sent            `json:"sends"`
	at       time.Duration
	keyText  string
}

// sent is one planned delivery: what it would send.
type sent struct {
	Action string `json:"action"`
	Type   string `json:"type"`
	Target string `json:"target,omitempty"`
	Text   string `json:"text"`
	Error  string `json:"error,omitempty"`
}

// explainStep is the state of every key after one timeline step.
type explainStep struct {
	At    string   `json:"at"`
	Step  string   `json:"step"`
	Fired []*fired `json:"fired,omitempty"`
	State []string `json:"state"`
}

// testRunner runs the tests of one invocation. The engine loads the
// rules itself, reading ${VAR} from the process environment as serve does.
type testRunner struct {
	registry func() (*actionapi.Registry, error)
	explain  bool
}

// run runs one test of f against the rules at rulesPath.
func (r *testRunner) run(f *ruleTestFile, t *ruleTest, rulesPath string) testOutcome {
	began := time.Now()
	out := testOutcome{File: f.path, Name: t.name, Line: t.line}
	all, err := r.timeline(f, t, rulesPath, &out)
	if err != nil {
		out.Error = err.Error()
		out.Took = time.Since(began)
		return out
	}
	out.Rows = compare(t.expect, all)
	out.OK = !slices.ContainsFunc(out.Rows, func(d diffRow) bool { return d.Status != "ok" })
	out.Took = time.Since(began)
	return out
}

// timeline plays t's timeline and returns everything that fired.
func (r *testRunner) timeline(f *ruleTestFile, t *ruleTest, rulesPath string, out *testOutcome) ([]*fired, error) {
	sim, err := engine.NewSimulation(engine.SimOptions{
		RulesPath: rulesPath, Registry: r.registry, Start: f.start, Zone: f.zone,
		Logger: slog.New(slog.DiscardHandler), HTTP: actionapi.NewHTTP(nil),
	})
	if err != nil {
		return nil, err
	}
	defer sim.Close()
	labels := map[string]string{} // event id → the item that sent it
	var all []*fired
	take := func() ([]*fired, error) {
		fs, err := sim.Firings()
		if err != nil {
			return nil, err
		}
		var got []*fired
		for i := range fs {
			got = append(got, firedOf(f.start, &fs[i], labels))
		}
		all = append(all, got...)
		return got, nil
	}
	for _, it := range t.items {
		if err := r.advance(sim, f, f.start.Add(it.at), take, out); err != nil {
			return nil, err
		}
		step := ""
		if it.restart {
			if err := sim.Restart(it.down); err != nil {
				return nil, fmt.Errorf("line %d: restart: %w", it.line, err)
			}
			step = fmt.Sprintf("restart, down %s: back at %s", fmtOffset(it.down), fmtOffset(sim.Now().Sub(f.start)))
		} else {
			ev, err := it.source.Decode(it.req)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s refused the callback: %w", it.line, it.name, err)
			}
			id, dup, err := sim.Accept(ev, it.source.DedupeKey(it.req, ev))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", it.line, err)
			}
			if !dup {
				labels[id] = it.label()
			}
			step = describeCallback(it, ev.Kind, ev.Event, ev.Domain+"/"+ev.App+"/"+ev.Stream)
			if dup {
				step += fmt.Sprintf(": a retry of %s, not evaluated again", labels[id])
			}
		}
		if r.explain {
			if err := r.explainStep(sim, f, it.at, step, take, out); err != nil {
				return nil, err
			}
		}
	}
	if err := r.advance(sim, f, f.start.Add(t.until), take, out); err != nil {
		return nil, err
	}
	if _, err := take(); err != nil {
		return nil, err
	}
	return all, nil
}

// advance moves the clock to t; explaining, it stops at each timer that
// comes due on the way, to show what it did.
func (r *testRunner) advance(sim *engine.Simulation, f *ruleTestFile, t time.Time, take func() ([]*fired, error), out *testOutcome) error {
	for r.explain {
		next, err := sim.NextTimer()
		if err != nil {
			return err
		}
		if next.IsZero() || next.After(t) {
			break
		}
		if err := sim.Advance(next); err != nil {
			return err
		}
		if err := r.explainStep(sim, f, next.Sub(f.start), "timers due", take, out); err != nil {
			return err
		}
	}
	return sim.Advance(t)
}

func describeCallback(it *timelineItem, kind, name, stream string) string {
	what := kind
	if name != "" {
		what += " " + name
	}
	s := fmt.Sprintf("%s: %s %s", it.label(), what, stream)
	if it.retryOf != nil {
		s = fmt.Sprintf("%s: retry of %s", it.label(), it.retryOf.label())
	}
	return s
}

// explainStep records the step just made: what it fired, and every
// key's state after it.
func (r *testRunner) explainStep(sim *engine.Simulation, f *ruleTestFile, at time.Duration, step string,
	take func() ([]*fired, error), out *testOutcome) error {
	now, err := take()
	if err != nil {
		return err
	}
	out.Explain = append(out.Explain, explainStep{At: fmtOffset(at), Step: step, Fired: now, State: stateLines(sim, f.start)})
	return nil
}

// stateLines describes every key's state at the simulation's clock.
func stateLines(sim *engine.Simulation, start time.Time) []string {
	states, err := sim.State()
	if err != nil {
		return []string{"state: " + err.Error()}
	}
	lines := []string{}
	off := func(t time.Time) string { return fmtOffset(t.Sub(start)) }
	for _, s := range states {
		var parts []string
		switch s.Block {
		case "expect":
			if s.Trigger != nil {
				parts = append(parts, fmt.Sprintf("waiting since %s, due %s", off(s.Trigger.ReceivedAt), off(*s.Due)))
			}
		case "count":
			var in, outside []string
			for _, at := range s.Times {
				w, _ := time.ParseDuration(s.Window)
				if at.After(sim.Now().Add(-w)) {
					in = append(in, off(at))
				} else {
					outside = append(outside, off(at))
				}
			}
			p := fmt.Sprintf("%d of %d within %s: [%s]", len(in), s.Threshold, fmtOffsetString(s.Window), strings.Join(in, " "))
			if len(outside) > 0 {
				p += fmt.Sprintf(", out of the window [%s]", strings.Join(outside, " "))
			}
			parts = append(parts, p)
		case "session", "digest":
			if s.Since != nil {
				p := fmt.Sprintf("%d gathered since %s", s.Count, off(*s.Since))
				if s.Due != nil {
					p += ", closes " + off(*s.Due)
				}
				if s.Dropped > 0 {
					p += fmt.Sprintf(", %d dropped", s.Dropped)
				}
				parts = append(parts, p)
			}
		}
		if s.Prev != nil {
			parts = append(parts, "prev "+s.Prev.Kind+" at "+off(s.Prev.ReceivedAt))
		}
		if len(parts) == 0 {
			parts = append(parts, "nothing pending")
		}
		lines = append(lines, fmt.Sprintf("%s %s: %s", s.Rule, keyText(s.Key), strings.Join(parts, "; ")))
	}
	return lines
}

// firedOf is a firing as reports show it.
func firedOf(start time.Time, f *engine.SimFiring, labels map[string]string) *fired {
	out := &fired{at: f.At.Sub(start), Rule: f.Rule, Key: f.Key, Count: f.Count, Late: f.Late, Shadow: f.Shadow,
		CausedBy: []string{}, Sends: []sent{}}
	out.At = fmtOffset(out.at)
	if f.Key == nil { // a single-event rule: the stream of its event
		out.Key = map[string]string{"domain": f.Event.Domain, "app": f.Event.App, "stream": f.Event.Stream}
	}
	out.keyText = keyText(out.Key)
	for _, id := range f.Causes {
		if l, ok := labels[id]; ok {
			out.CausedBy = append(out.CausedBy, l)
		} else {
			out.CausedBy = append(out.CausedBy, id)
		}
	}
	for _, s := range f.Steps {
		snt := sent{Action: s.Action, Type: s.Type, Error: s.Error}
		if p := s.Plan; p != nil {
			snt.Target, snt.Text = strings.TrimSpace(p.Method+" "+p.Target), planText(p)
		}
		out.Sends = append(out.Sends, snt)
	}
	return out
}

// planText is what a planned delivery would send, as text: a body
// as it is, anything else as JSON.
func planText(p *actionapi.Plan) string {
	switch b := p.Body.(type) {
	case nil:
		return ""
	case string:
		return b
	default:
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // as written: contains "<at>" must find it
		if err := enc.Encode(b); err != nil {
			return fmt.Sprint(b)
		}
		return strings.TrimSuffix(buf.String(), "\n")
	}
}

// compare pairs expectations with firings, as many as can be (each takes
// at most one), and shows the rest: an expectation left over beside the
// closest firing of its rule left over, with what differs; the others
// alone.
func compare(exps []*expectation, got []*fired) []diffRow {
	match := bipartite(len(exps), len(got), func(i, j int) bool { return len(exps[i].differs(got[j])) == 0 })
	taken := make([]bool, len(got))
	var rows []diffRow
	var left []int
	for i, j := range match {
		if j >= 0 {
			taken[j] = true
			rows = append(rows, diffRow{Status: "ok", Expected: exps[i].show(), Fired: got[j]})
		} else {
			left = append(left, i)
		}
	}
	for _, i := range left {
		e := exps[i]
		best := -1
		for j, g := range got {
			if taken[j] || g.Rule != e.rule {
				continue
			}
			if best < 0 || absDur(g.at-e.at) < absDur(got[best].at-e.at) {
				best = j
			}
		}
		if best < 0 {
			rows = append(rows, diffRow{Status: "missing", Expected: e.show()})
			continue
		}
		taken[best] = true
		rows = append(rows, diffRow{Status: "differs", Expected: e.show(), Fired: got[best], Why: e.differs(got[best])})
	}
	for j, g := range got {
		if !taken[j] {
			rows = append(rows, diffRow{Status: "unexpected", Fired: g})
		}
	}
	slices.SortStableFunc(rows, func(a, b diffRow) int { return int(a.at() - b.at()) })
	return rows
}

func (d diffRow) at() time.Duration {
	if d.Expected != nil {
		return d.Expected.e.at
	}
	return d.Fired.at
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// bipartite is a maximum matching of n expectations to m firings where
// ok says which may pair (Kuhn's augmenting paths; tests are small):
// match[i] is the firing of expectation i, or -1.
func bipartite(n, m int, ok func(i, j int) bool) []int {
	owner := make([]int, m)
	for j := range owner {
		owner[j] = -1
	}
	var try func(i int, seen []bool) bool
	try = func(i int, seen []bool) bool {
		for j := range m {
			if seen[j] || !ok(i, j) {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || try(owner[j], seen) {
				owner[j] = i
				return true
			}
		}
		return false
	}
	for i := range n {
		try(i, make([]bool, m))
	}
	match := make([]int, n)
	for i := range match {
		match[i] = -1
	}
	for j, i := range owner {
		if i >= 0 {
			match[i] = j
		}
	}
	return match
}

// differs says how a firing differs from the expectation; nothing if it
// is the expected one.
func (e *expectation) differs(g *fired) []string {
	var why []string
	if g.Rule != e.rule {
		return []string{fmt.Sprintf("rule: want %s, fired %s", e.rule, g.Rule)}
	}
	switch {
	case !e.between && g.at != e.at:
		why = append(why, fmt.Sprintf("at: want %s, fired at %s", fmtOffset(e.at), g.At))
	case e.between && (g.at < e.at || g.at > e.to):
		why = append(why, fmt.Sprintf("between: want %s to %s, fired at %s", fmtOffset(e.at), fmtOffset(e.to), g.At))
	}
	for _, k := range e.keyOrder {
		if v := g.Key[k]; v != e.key[k] {
			why = append(why, fmt.Sprintf("key: %s: want %s, fired for %s", k, e.key[k], v))
		}
	}
	if e.count != nil && g.Count != *e.count {
		why = append(why, fmt.Sprintf("count: want %d, fired with %d", *e.count, g.Count))
	}
	if e.late != nil && g.Late != *e.late {
		why = append(why, fmt.Sprintf("late: want %v, fired with %v", *e.late, g.Late))
	}
	for _, id := range e.causedBy {
		if !slices.Contains(g.CausedBy, id) {
			why = append(why, fmt.Sprintf("caused_by: want %s among them, fired by %s", id, strings.Join(g.CausedBy, ", ")))
		}
	}
	for _, a := range e.sendOrder {
		i := slices.IndexFunc(g.Sends, func(s sent) bool { return s.Action == a })
		switch {
		case g.Shadow:
			why = append(why, fmt.Sprintf("sends: %s: the rule is in shadow mode and sends nothing", a))
		case i < 0:
			why = append(why, fmt.Sprintf("sends: %s: nothing planned for it", a))
		case g.Sends[i].Error != "":
			why = append(why, fmt.Sprintf("sends: %s: cannot render: %s", a, g.Sends[i].Error))
		case !strings.Contains(g.Sends[i].Text, e.sends[a]):
			why = append(why, fmt.Sprintf("sends: %s: sends something else", a))
		}
	}
	return why
}

// show is an expectation as reports show it.
func (e *expectation) show() *expected {
	x := &expected{Rule: e.rule, Key: e.key, Count: e.count, Late: e.late, CausedBy: e.causedBy, Sends: e.sends, e: e}
	if e.between {
		x.Between = []string{fmtOffset(e.at), fmtOffset(e.to)}
	} else {
		x.At = fmtOffset(e.at)
	}
	return x
}

// fmtOffset writes an offset as a test file does: 6h30m, 10m2s, 0s.
func fmtOffset(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func fmtOffsetString(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	return fmtOffset(d)
}

// testRun is one invocation's rule test files and how to report them.
type testRun struct {
	rules   string // the RULES argument; "" to take each file's rules:
	files   []string
	run     *regexp.Regexp
	junit   string
	explain bool
	json    bool
	plugins string
	getenv  func(string) (string, bool)
	stdout  io.Writer
}

// runAll reads every test file, reports each one's mistakes with
// file:line:col, runs the tests of the others and reports them.
func (tr *testRun) runAll() error {
	sets := map[string]*rules.Set{}
	defer func() {
		for _, s := range sets {
			s.Retire()
		}
	}()
	type file struct {
		f     *ruleTestFile
		rules string
	}
	var files []file
	broken := map[string][]string{}
	for _, path := range tr.files {
		f, rulesPath, err := tr.read(path, sets)
		if err != nil {
			var lines []string
			if ds := yamlconf.Diagnostics(err); ds != nil {
				for _, d := range ds {
					lines = append(lines, d.String())
				}
			} else {
				lines = append(lines, path+": "+err.Error())
			}
			broken[path] = lines
			tr.problems(path, lines)
			continue
		}
		files = append(files, file{f, rulesPath})
	}
	runner := &testRunner{registry: pluginRegistry(tr.plugins), explain: tr.explain}
	var outcomes []testOutcome
	failed := 0
	for _, fl := range files {
		for _, t := range fl.f.tests {
			if tr.run != nil && !tr.run.MatchString(t.name) {
				continue
			}
			o := runner.run(fl.f, t, fl.rules)
			if !o.OK {
				failed++
			}
			outcomes = append(outcomes, o)
			if tr.json {
				if err := json.NewEncoder(tr.stdout).Encode(o); err != nil {
					return err
				}
			} else {
				printOutcome(tr.stdout, o, tr.explain)
			}
		}
	}
	if !tr.json {
		fmt.Fprintf(tr.stdout, "%d test(s), %d failed", len(outcomes), failed)
		if len(broken) > 0 {
			fmt.Fprintf(tr.stdout, ", %d test file(s) not read", len(broken))
		}
		fmt.Fprintln(tr.stdout)
	}
	if tr.junit != "" {
		if err := writeJUnit(tr.junit, outcomes, broken); err != nil {
			return err
		}
	}
	switch {
	case len(broken) > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%d test file(s) not run: mistakes in them or in their rules", len(broken))}
	case failed > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%d of %d test(s) failed", failed, len(outcomes))}
	}
	return nil
}

// read parses a test file and checks it against its rules, loaded once
// per path.
func (tr *testRun) read(path string, sets map[string]*rules.Set) (*ruleTestFile, string, error) {
	f, err := parseTestFile(path, sourceapi.Default())
	if err != nil {
		return nil, "", err
	}
	rulesPath := tr.rules
	if rulesPath == "" {
		if f.rules == "" {
			var l yamlconf.List
			l.Add(yamlconf.Diagnostic{File: path, Line: 1, Col: 1, Msg: "rules: is required when no RULES path is given: the rules file or folder these tests are for"})
			return nil, "", l.Err()
		}
		rulesPath = f.rules
	}
	set, ok := sets[rulesPath]
	if !ok {
		if set, err = loadForCLI(rulesPath, tr.getenv, tr.plugins); err != nil {
			return nil, "", err
		}
		sets[rulesPath] = set
	}
	if err := f.checkAgainst(set); err != nil {
		return nil, "", err
	}
	return f, rulesPath, nil
}

// problems reports a file that could not be read, as check does.
func (tr *testRun) problems(path string, lines []string) {
	if tr.json {
		_ = json.NewEncoder(tr.stdout).Encode(map[string]any{"file": path, "problems": lines})
		return
	}
	for _, l := range lines {
		fmt.Fprintln(tr.stdout, l)
	}
}
