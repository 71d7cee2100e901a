package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	exprfile "github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/yamlconf"
)

// Env is what the conditions of a rule over time see: the event's fields,
// and prev, the key's last tracked event (nil if none), typed like the
// event so that a misspelt prev field is a load error.
type Env struct {
	event.Event
	Prev *event.Event `expr:"prev"`
}

// DefaultBy is the key of a rule over time that names none: one stream.
var DefaultBy = []string{"domain", "app", "stream"}

// Temporal is what makes a rule one over time: the key its state is kept
// by, the events it tracks as prev, and at most one temporal block. A rule
// with only prev in its condition has no block: it fires as a single-event
// rule does, with prev at hand.
type Temporal struct {
	By      []string // event fields, or push_args.NAME
	Track   *vm.Program
	Expect  *Expect
	Count   *Count
	Session *Session
	Digest  *Digest
	MaxKeys int
	// Hash identifies the temporal definition (by, track, when and the
	// block): a rule's state is kept across a reload while it holds.
	Hash string

	usesPrev bool
}

// Expect fires when a `when` match is not followed by a `match` event
// within Within.
type Expect struct {
	Match, Until *vm.Program
	Within       time.Duration
	Keep         bool // retrigger: keep (default restart)
	// WithinAt is where within is written, for warnings about it.
	WithinAt yamlconf.Diagnostic
	// MatchSrc is match as written.
	MatchSrc string
}

// Count fires when AtLeast matches (or distinct values of Distinct) fall
// within the sliding window Within.
type Count struct {
	AtLeast     int
	Within      time.Duration
	Distinct    string
	Rearm       string // below (default), reset or every
	MaxDistinct int
}

// Session gathers matches between a `start` event and the next one, or
// until no event came for the key for Idle.
type Session struct {
	Start    *vm.Program
	Idle     time.Duration
	MaxItems int
}

// Digest gathers matches into buckets: clock-aligned (Every) or starting
// at a bucket's first item (Wait).
type Digest struct {
	Every, Wait time.Duration
	MaxItems    int
}

// Block names the rule's temporal block: expect, count, session, digest,
// or "" for a rule that only uses prev.
func (t *Temporal) Block() string {
	switch {
	case t.Expect != nil:
		return "expect"
	case t.Count != nil:
		return "count"
	case t.Session != nil:
		return "session"
	case t.Digest != nil:
		return "digest"
	}
	return ""
}

// Tracks reports whether the rule keeps prev, and so ev becomes the key's
// prev (after `when` is evaluated).
func (t *Temporal) Tracks(m *Matcher, env *Env) (bool, error) {
	if !t.usesPrev {
		return false, nil
	}
	if t.Track == nil {
		return true, nil
	}
	return m.Eval(t.Track, env)
}

// KeyOf is the values of the rule's `by` fields for ev, in order.
func (t *Temporal) KeyOf(ev *event.Event) []string {
	out := make([]string, len(t.By))
	for i, f := range t.By {
		out[i] = FieldText(ev, f)
	}
	return out
}

// FieldText is an event field (or push_args.NAME) as text, as keys and
// distinct counts compare it.
func FieldText(ev *event.Event, f string) string {
	switch f {
	case "domain":
		return ev.Domain
	case "app":
		return ev.App
	case "stream":
		return ev.Stream
	case "format":
		return ev.Format
	case "event":
		return ev.Event
	case "kind":
		return ev.Kind
	case "source":
		return ev.Source
	case "uri":
		return ev.URI
	}
	if arg, ok := strings.CutPrefix(f, "push_args."); ok {
		return ev.PushArgs[arg]
	}
	return fmt.Sprint(event.TemplateData(ev, nil)[f])
}

// WhenEnv evaluates r's condition against env: true for a rule without
// one.
func (m *Matcher) WhenEnv(r *Rule, env *Env) (bool, error) {
	if r.program == nil {
		return true, nil
	}
	return m.Eval(r.program, env)
}

// Eval runs a condition compiled for a rule over time; nil is false.
func (m *Matcher) Eval(p *vm.Program, env *Env) (bool, error) {
	if p == nil {
		return false, nil
	}
	out, err := m.vm.Run(p, env)
	if err != nil {
		return false, err
	}
	ok, _ := out.(bool)
	return ok, nil
}

// temporalYAML holds a rule's temporal keys as written.
type temporalYAML struct {
	By      []yaml.Node `yaml:"by"`
	Track   yaml.Node   `yaml:"track"`
	Expect  yaml.Node   `yaml:"expect"`
	Count   yaml.Node   `yaml:"count"`
	Session yaml.Node   `yaml:"session"`
	Digest  yaml.Node   `yaml:"digest"`
	MaxKeys yaml.Node   `yaml:"max_keys"`
}

func (ty *temporalYAML) declared() bool {
	return len(ty.By) > 0 || ty.Track.Kind != 0 || ty.Expect.Kind != 0 || ty.Count.Kind != 0 ||
		ty.Session.Kind != 0 || ty.Digest.Kind != 0 || ty.MaxKeys.Kind != 0
}

// DefaultMaxKeys bounds the keys one rule over time keeps state for.
const DefaultMaxKeys = 10_000

// Defaults of the temporal blocks' bounds.
const (
	defaultMaxItems    = 100
	defaultMaxDistinct = 1000
)

// usesPrev reports whether a condition names prev, which makes its rule
// one over time (prev is not an event field, so it cannot mean anything
// else).
func usesPrev(when string) bool {
	if !strings.Contains(when, "prev") {
		return false
	}
	tree, err := parser.Parse(when)
	if err != nil {
		return false // reported when the condition is compiled
	}
	found := false
	ast.Find(tree.Node, func(n ast.Node) bool {
		id, ok := n.(*ast.IdentifierNode)
		found = found || ok && id.Value == "prev"
		return found
	})
	return found
}

// temporal reads a rule's temporal keys; the rule's condition is compiled
// afterwards against Env.
func (l *loader) temporal(file string, n *yaml.Node, r *Rule, ty *temporalYAML) *Temporal {
	t := &Temporal{By: DefaultBy, MaxKeys: DefaultMaxKeys}
	if len(ty.By) > 0 {
		t.By = nil
		for i := range ty.By {
			f := &ty.By[i]
			name := f.Value
			arg, isArg := strings.CutPrefix(name, "push_args.")
			if f.Kind != yaml.ScalarNode || isArg && arg == "" ||
				!isArg && (!slices.Contains(event.Fields, name) || name == "payload" || name == "push_args") {
				l.diags.At(file, f, "rule %q: by: unknown field %q: want an event field or push_args.NAME", r.Name, name)
				continue
			}
			t.By = append(t.By, name)
		}
	}
	if ty.MaxKeys.Kind != 0 {
		if err := ty.MaxKeys.Decode(&t.MaxKeys); err != nil || t.MaxKeys <= 0 {
			l.diags.At(file, &ty.MaxKeys, "rule %q: max_keys: want a positive number", r.Name)
		}
	}
	if ty.Track.Kind != 0 {
		t.Track = l.temporalExpr(file, r, &ty.Track, "track")
	}
	blocks := 0
	for _, b := range []*yaml.Node{&ty.Expect, &ty.Count, &ty.Session, &ty.Digest} {
		if b.Kind != 0 {
			blocks++
			if blocks == 2 {
				l.diags.At(file, b, "rule %q: at most one of expect, count, session and digest", r.Name)
			}
		}
	}
	switch {
	case ty.Expect.Kind != 0:
		t.Expect = l.expect(file, r, &ty.Expect)
	case ty.Count.Kind != 0:
		t.Count = l.count(file, r, &ty.Count)
	case ty.Session.Kind != 0:
		t.Session = l.session(file, r, &ty.Session)
	case ty.Digest.Kind != 0:
		t.Digest = l.digest(file, r, &ty.Digest)
	}
	t.usesPrev = usesPrev(r.When) || t.Track != nil
	t.Hash = temporalHash(r, ty)
	return t
}

func (l *loader) expect(file string, r *Rule, n *yaml.Node) *Expect {
	var y struct {
		Match     yaml.Node `yaml:"match"`
		Within    yaml.Node `yaml:"within"`
		Until     yaml.Node `yaml:"until"`
		Retrigger string    `yaml:"retrigger"`
	}
	if err := yamlconf.Decode(file, n, &y); err != nil {
		l.addErr(file, n, err)
		return nil
	}
	e := &Expect{}
	if y.Match.Kind == 0 {
		l.diags.At(file, n, "rule %q: expect: match is required: the event that closes the expectation", r.Name)
	} else {
		e.Match = l.temporalExpr(file, r, &y.Match, "expect: match")
		e.MatchSrc = y.Match.Value
	}
	if y.Until.Kind != 0 {
		e.Until = l.temporalExpr(file, r, &y.Until, "expect: until")
	}
	e.Within = l.duration(file, r, n, &y.Within, "expect: within", true)
	e.WithinAt = yamlconf.Diagnostic{File: file, Line: y.Within.Line, Col: y.Within.Column}
	switch y.Retrigger {
	case "", "restart":
	case "keep":
		e.Keep = true
	default:
		l.diags.At(file, n, "rule %q: expect: retrigger: want restart or keep, not %q", r.Name, y.Retrigger)
	}
	return e
}

func (l *loader) count(file string, r *Rule, n *yaml.Node) *Count {
	var y struct {
		AtLeast     yaml.Node `yaml:"at_least"`
		Within      yaml.Node `yaml:"within"`
		Distinct    yaml.Node `yaml:"distinct"`
		Rearm       string    `yaml:"rearm"`
		MaxDistinct yaml.Node `yaml:"max_distinct"`
	}
	if err := yamlconf.Decode(file, n, &y); err != nil {
		l.addErr(file, n, err)
		return nil
	}
	c := &Count{Rearm: "below", MaxDistinct: defaultMaxDistinct}
	if y.AtLeast.Kind == 0 {
		l.diags.At(file, n, "rule %q: count: at_least is required", r.Name)
	} else if err := y.AtLeast.Decode(&c.AtLeast); err != nil || c.AtLeast < 1 {
		l.diags.At(file, &y.AtLeast, "rule %q: count: at_least: want a whole number of at least 1", r.Name)
	}
	c.Within = l.duration(file, r, n, &y.Within, "count: within", true)
	if y.Distinct.Kind != 0 {
		f := y.Distinct.Value
		arg, isArg := strings.CutPrefix(f, "push_args.")
		if y.Distinct.Kind != yaml.ScalarNode || isArg && arg == "" ||
			!isArg && (!slices.Contains(event.Fields, f) || f == "payload" || f == "push_args") {
			l.diags.At(file, &y.Distinct, "rule %q: count: distinct: unknown field %q: want an event field or push_args.NAME", r.Name, f)
		}
		c.Distinct = f
	}
	switch y.Rearm {
	case "":
	case "below", "reset", "every":
		c.Rearm = y.Rearm
	default:
		l.diags.At(file, n, "rule %q: count: rearm: want below, reset or every, not %q", r.Name, y.Rearm)
	}
	if y.MaxDistinct.Kind != 0 {
		if err := y.MaxDistinct.Decode(&c.MaxDistinct); err != nil || c.MaxDistinct < 1 {
			l.diags.At(file, &y.MaxDistinct, "rule %q: count: max_distinct: want a positive number", r.Name)
		}
	}
	return c
}

func (l *loader) session(file string, r *Rule, n *yaml.Node) *Session {
	var y struct {
		Start    yaml.Node `yaml:"start"`
		Idle     yaml.Node `yaml:"idle"`
		MaxItems yaml.Node `yaml:"max_items"`
	}
	if err := yamlconf.Decode(file, n, &y); err != nil {
		l.addErr(file, n, err)
		return nil
	}
	s := &Session{MaxItems: l.maxItems(file, r, &y.MaxItems, "session")}
	if y.Start.Kind == 0 {
		l.diags.At(file, n, "rule %q: session: start is required: the event that opens a session", r.Name)
	} else {
		s.Start = l.temporalExpr(file, r, &y.Start, "session: start")
	}
	s.Idle = l.duration(file, r, n, &y.Idle, "session: idle", true)
	return s
}

func (l *loader) digest(file string, r *Rule, n *yaml.Node) *Digest {
	var y struct {
		Every    yaml.Node `yaml:"every"`
		Wait     yaml.Node `yaml:"wait"`
		MaxItems yaml.Node `yaml:"max_items"`
	}
	if err := yamlconf.Decode(file, n, &y); err != nil {
		l.addErr(file, n, err)
		return nil
	}
	d := &Digest{MaxItems: l.maxItems(file, r, &y.MaxItems, "digest")}
	switch {
	case y.Every.Kind != 0 && y.Wait.Kind != 0:
		l.diags.At(file, &y.Wait, "rule %q: digest: every or wait, not both", r.Name)
	case y.Every.Kind != 0:
		d.Every = l.duration(file, r, n, &y.Every, "digest: every", true)
	case y.Wait.Kind != 0:
		d.Wait = l.duration(file, r, n, &y.Wait, "digest: wait", true)
	default:
		l.diags.At(file, n, "rule %q: digest: every (buckets aligned to the clock) or wait (after a bucket's first item) is required", r.Name)
	}
	return d
}

func (l *loader) maxItems(file string, r *Rule, n *yaml.Node, block string) int {
	v := defaultMaxItems
	if n.Kind != 0 {
		if err := n.Decode(&v); err != nil || v < 1 {
			l.diags.At(file, n, "rule %q: %s: max_items: want a positive number", r.Name, block)
			return defaultMaxItems
		}
	}
	return v
}

// duration decodes a positive duration; a missing one is an error when
// required.
func (l *loader) duration(file string, r *Rule, block, n *yaml.Node, what string, required bool) time.Duration {
	if n.Kind == 0 {
		if required {
			l.diags.At(file, block, "rule %q: %s is required (e.g. 30m)", r.Name, what)
		}
		return 0
	}
	var d time.Duration
	if n.Kind != yaml.ScalarNode {
		l.diags.At(file, n, "rule %q: %s: want a duration such as 30s, 10m or 6h", r.Name, what)
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d <= 0 {
		l.diags.At(file, n, "rule %q: %s: %q is not a positive duration such as 30s, 10m or 6h", r.Name, what, n.Value)
		return 0
	}
	return d
}

// temporalExpr compiles one of a rule's temporal expressions against Env.
func (l *loader) temporalExpr(file string, r *Rule, n *yaml.Node, what string) *vm.Program {
	return l.compile(file, r, n, what, Env{})
}

// compile compiles a condition against env, reporting a problem at its
// position in the file.
func (l *loader) compile(file string, r *Rule, n *yaml.Node, what string, env any) *vm.Program {
	if n.Kind != yaml.ScalarNode || strings.TrimSpace(n.Value) == "" {
		l.diags.At(file, n, "rule %q: %s: want an expression", r.Name, what)
		return nil
	}
	if len(n.Value) > maxCondition {
		l.diags.At(file, n, "rule %q: %s: longer than %d KiB", r.Name, what, maxCondition>>10)
		return nil
	}
	prog, err := expr.Compile(n.Value, append([]expr.Option{expr.Env(env), expr.AsBool(), expr.WarnOnAny()}, clock(l.opts.Deps.Now)...)...)
	if err != nil {
		var fe *exprfile.Error
		if errors.As(err, &fe) && fe.Line > 0 {
			line, col := exprPos(n, fe, l.lines)
			l.diags.Add(yamlconf.Diagnostic{File: file, Line: line, Col: col,
				Msg: fmt.Sprintf("rule %q: %s: %s", r.Name, what, fe.Message)})
			return nil
		}
		l.diags.At(file, n, "rule %q: %s: %s", r.Name, what, firstLine(err.Error()))
		return nil
	}
	return prog
}

// temporalHash identifies a rule's temporal definition as written.
func temporalHash(r *Rule, ty *temporalYAML) string {
	h := sha256.New()
	fmt.Fprintf(h, "when\x00%s\x00", r.When)
	for _, n := range []*yaml.Node{&ty.Track, &ty.Expect, &ty.Count, &ty.Session, &ty.Digest} {
		canonical(h, n)
		h.Write([]byte{0})
	}
	for _, b := range ty.By {
		fmt.Fprintf(h, "by\x00%s\x00", b.Value)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// canonical writes a node's content, whatever its layout in the file.
func canonical(w interface{ Write([]byte) (int, error) }, n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		fmt.Fprintf(w, "s%q", n.Value)
	case yaml.MappingNode, yaml.SequenceNode:
		fmt.Fprintf(w, "%d[", n.Kind)
		for _, c := range n.Content {
			canonical(w, c)
		}
		w.Write([]byte("]"))
	}
}

// CycleWarnings warns of absence windows shorter than the recording
// cycle: a recording's file comes when its cycle ends (Aliyun's default
// CycleDuration is 6h), so "no file within 30m" would fire for every
// recording.
func (s *Set) CycleWarnings(cycle time.Duration) []yamlconf.Diagnostic {
	var out []yamlconf.Diagnostic
	for _, r := range s.Rules {
		if t := r.Temporal; t != nil && t.Expect != nil && t.Expect.Within > 0 && t.Expect.Within < cycle && waitsForFile(t.Expect.MatchSrc) {
			d := t.Expect.WithinAt
			d.Msg = fmt.Sprintf("warning: rule %q: expect: within %s is shorter than the expected recording cycle %s: a file comes when its cycle ends, so this fires for every recording",
				r.Name, t.Expect.Within, cycle)
			out = append(out, d)
		}
	}
	return out
}

// waitsForFile reports whether an expectation's match names what only
// file events have.
func waitsForFile(match string) bool {
	for _, f := range []string{`"file"`, "uri", "duration", "format", "start_time", "stop_time"} {
		if strings.Contains(match, f) {
			return true
		}
	}
	return false
}
