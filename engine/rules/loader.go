package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	exprfile "github.com/expr-lang/expr/file"
	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/yamlconf"
)

// loader walks the YAML trees of a load by hand, so every item keeps its
// position and every problem is collected rather than the first one only.
type loader struct {
	opts    Options
	set     *Set
	diags   yamlconf.List
	actions map[string]*Action
	broken  map[string]bool // actions that failed to load: steps using them say nothing more
	rules   map[string]*Rule
	guard   loadGuard           // sources: and scrubbing ${...} values from diagnostics; see sources.go
	failed  map[*yaml.Node]bool // scalars whose ${...} could not be expanded: already reported
	lines   []string            // of the file being loaded, for positions inside block scalars
	// domainsAt is where each ingest domain of domains: is mapped; see domains.go.
	domainsAt map[string]string
	sweeperAt string // file:line of sweeper:, once seen; see sweeper.go
}

var topKeys = []string{"actions", "rules", "sources", "domains", "sweeper"}

func (l *loader) file(name string, data []byte) {
	l.lines = strings.Split(string(data), "\n")
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			l.diags.AddErr(name, nil, err)
			return
		}
		l.document(name, root.Content[0])
	}
}

func (l *loader) document(name string, doc *yaml.Node) {
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" { // `---` alone holds nothing, which is fine
		return
	}
	l.expand(name, doc)
	if doc.Kind != yaml.MappingNode {
		l.diags.At(name, doc, "want a mapping with keys %s", strings.Join(topKeys, ", "))
		return
	}
	var actions, rules *yaml.Node
	yamlconf.ForEachKey(name, doc, &l.diags, func(k, v *yaml.Node) {
		switch k.Value {
		case "actions":
			actions = v
		case "rules":
			rules = v
		case "sources":
			l.sourcesNode(name, v)
		case "domains":
			l.domainsNode(name, v)
		case "sweeper":
			l.sweeperNode(name, k, v)
		default:
			l.diags.At(name, k, "unknown key %q (want one of %s)", k.Value, strings.Join(topKeys, ", "))
		}
	})
	// Named actions first: rules refer to them.
	if actions != nil {
		l.actionsNode(name, actions)
	}
	if rules != nil {
		l.rulesNode(name, rules)
	}
}

func (l *loader) actionsNode(file string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.diags.At(file, n, "actions: want a mapping of action names to settings")
		return
	}
	yamlconf.ForEachKey(file, n, &l.diags, func(k, v *yaml.Node) {
		name := k.Value
		if prev, dup := l.actions[name]; dup || l.broken[name] {
			if !dup {
				l.diags.At(file, k, "action %q is defined more than once", name)
				return
			}
			l.diags.At(file, k, "action %q is already defined at %s:%d", name, prev.File, prev.Line)
			return
		}
		if v.Kind != yaml.MappingNode {
			l.diags.At(file, v, "action %q: want a mapping with a type", name)
			return
		}
		typ, settings := splitKey(v, "type")
		if typ == nil {
			l.diags.At(file, k, "action %q: missing type (one of %s)", name, strings.Join(l.opts.Registry.Names(), ", "))
			return
		}
		delivery, settings := splitKey(settings, "delivery")
		policy, ok := l.delivery(file, typ, delivery)
		inst := l.open(file, k, name, typ, settings)
		if inst == nil || !ok {
			l.broken[name] = true
			return
		}
		a := &Action{Name: name, Type: typ.Value, File: file, Line: k.Line, Instance: inst, Delivery: policy}
		l.actions[name] = a
		l.set.Actions = append(l.set.Actions, a)
	})
}

// delivery decodes an instance's `delivery:` over its type's defaults.
func (l *loader) delivery(file string, typ, n *yaml.Node) (actionapi.DeliveryPolicy, bool) {
	base := actionapi.Alerting
	if t, ok := l.opts.Registry.Lookup(typ.Value); ok && t.Delivery != (actionapi.DeliveryPolicy{}) {
		base = t.Delivery
	}
	var p actionapi.DeliveryPolicy
	if n == nil {
		return base, true
	}
	if err := yamlconf.Decode(file, n, &p); err != nil {
		l.addErr(file, n, err)
		return base, false
	}
	if p.MaxAttempts < 0 || p.MaxAge < 0 || p.Concurrency < 0 || p.Backoff < 0 || p.MaxBackoff < 0 {
		l.diags.At(file, n, "delivery: values must be positive")
		return base, false
	}
	return p.Over(base), true
}

// open builds one instance, reporting failures at the instance's position.
func (l *loader) open(file string, at *yaml.Node, name string, typ, settings *yaml.Node) actionapi.Instance {
	t, ok := l.opts.Registry.Lookup(typ.Value)
	if !ok {
		l.diags.At(file, typ, "unknown action type %q (want one of %s)", typ.Value, strings.Join(l.opts.Registry.Names(), ", "))
		return nil
	}
	if l.hasFailed(settings) {
		return nil // the unexpanded ${...} is reported; Open would only complain about it again
	}
	inst, err := t.Open(actionapi.Settings{
		Name: name, Type: t.Name, File: file, Node: settings,
		Deps: l.opts.Deps, Secrets: l.set.Secrets,
	})
	if err != nil {
		l.addErr(file, at, err)
		return nil
	}
	l.set.instances = append(l.set.instances, inst)
	return inst
}

// addErr records err: positioned diagnostics as they are, anything else at n.
func (l *loader) addErr(file string, n *yaml.Node, err error) {
	if ds := yamlconf.Diagnostics(err); ds != nil {
		l.diags.Add(ds...)
		return
	}
	l.diags.At(file, n, "%s", l.set.Secrets.Redact(err.Error()))
}

// splitKey returns the value of key in mapping n and a copy of n without it.
func splitKey(n *yaml.Node, key string) (value, rest *yaml.Node) {
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && value == nil {
			value = n.Content[i+1]
			continue
		}
		c.Content = append(c.Content, n.Content[i], n.Content[i+1])
	}
	return value, &c
}

// ruleYAML is a rule as written. Nodes are kept where positions matter.
type ruleYAML struct {
	Name        string        `yaml:"name"`
	Description string        `yaml:"description"`
	Mode        yaml.Node     `yaml:"mode"`
	When        yaml.Node     `yaml:"when"`
	Enabled     *bool         `yaml:"enabled"`
	Stop        bool          `yaml:"stop"`
	Throttle    *throttleYAML `yaml:"throttle"`
	Do          []yaml.Node   `yaml:"do"`
	Answer      yaml.Node     `yaml:"answer"`

	Temporal temporalYAML `yaml:",inline"`
}

type throttleYAML struct {
	By     []yaml.Node `yaml:"by"`
	Window yaml.Node   `yaml:"window"`
}

func (l *loader) rulesNode(file string, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		l.diags.At(file, n, "rules: want a list of rules")
		return
	}
	for _, rn := range n.Content {
		l.rule(file, rn)
	}
}

func (l *loader) rule(file string, n *yaml.Node) {
	var ry ruleYAML
	if err := yamlconf.Decode(file, n, &ry); err != nil {
		l.addErr(file, n, err)
		return
	}
	r := &Rule{Name: ry.Name, Description: ry.Description, When: ry.When.Value,
		Enabled: ry.Enabled == nil || *ry.Enabled, Stop: ry.Stop, File: file, Line: n.Line}
	r.Shadow = l.mode(file, r, &ry.Mode)
	switch prev, dup := l.rules[r.Name]; {
	case r.Name == "":
		l.diags.At(file, n, "rule: missing name")
	case dup:
		l.diags.At(file, n, "rule %q is already defined at %s:%d", r.Name, prev.File, prev.Line)
	default:
		l.rules[r.Name] = r
	}
	if ry.Temporal.declared() || usesPrev(r.When) {
		r.Temporal = l.temporal(file, n, r, &ry.Temporal)
		if ry.When.Kind != 0 {
			r.program = l.compile(file, r, &ry.When, "when", Env{})
		}
	} else {
		l.condition(file, r, &ry.When)
	}
	if ry.Throttle != nil {
		r.Throttle = l.throttle(file, n, ry.Throttle)
	}
	if ry.Answer.Kind != 0 {
		l.answerRule(file, n, r, &ry)
	} else if len(ry.Do) == 0 {
		l.diags.At(file, n, "rule %q: do: want at least one step", r.Name)
	}
	for i := range ry.Do {
		if s := l.step(file, r, i, &ry.Do[i]); s != nil {
			r.Steps = append(r.Steps, s)
		}
	}
	l.set.Rules = append(l.set.Rules, r)
}

// answerRule decodes a rule's answer:. Answers are decided when the
// callback arrives, so a rule over time cannot give one; without do:,
// stop and throttle would have nothing to act on.
func (l *loader) answerRule(file string, n *yaml.Node, r *Rule, ry *ruleYAML) {
	if r.Answer = l.answer(file, fmt.Sprintf("rule %q: answer", r.Name), &ry.Answer); r.Answer != nil {
		l.set.answers = append(l.set.answers, r)
	}
	if r.Temporal != nil {
		l.diags.At(file, &ry.Answer, "rule %q: answer: a rule over time cannot answer: answers are decided as the callback arrives", r.Name)
	}
	if len(ry.Do) == 0 && ry.Stop {
		l.diags.At(file, n, "rule %q: stop: applies to rules with do: steps; answer rules are tried in order until one holds", r.Name)
	}
	if len(ry.Do) == 0 && ry.Throttle != nil {
		l.diags.At(file, n, "rule %q: throttle: applies to do: steps, and this rule has none", r.Name)
	}
}

// maxCondition bounds a condition: expr's parser recurses once per nested
// parenthesis, and a deep enough nest overflows the stack.
const maxCondition = 16 << 10

func (l *loader) condition(file string, r *Rule, n *yaml.Node) {
	if n.Kind == 0 {
		return // no when: the rule matches every event
	}
	if n.Kind != yaml.ScalarNode || strings.TrimSpace(n.Value) == "" {
		l.diags.At(file, n, "rule %q: when: want an expression", r.Name)
		return
	}
	if len(n.Value) > maxCondition {
		l.diags.At(file, n, "rule %q: when: longer than %d KiB", r.Name, maxCondition>>10)
		return
	}
	prog, constraints, err := compileCondition(n.Value, l.opts.Deps.Now)
	if err != nil {
		var fe *exprfile.Error
		if errors.As(err, &fe) && fe.Line > 0 {
			line, col := exprPos(n, fe, l.lines)
			l.diags.Add(yamlconf.Diagnostic{File: file, Line: line, Col: col,
				Msg: fmt.Sprintf("rule %q: when: %s", r.Name, fe.Message)})
			return
		}
		l.diags.At(file, n, "rule %q: when: %s", r.Name, firstLine(err.Error()))
		return
	}
	r.program, r.constraints = prog, constraints
}

// exprPos maps a position inside an expression back into the file.
func exprPos(n *yaml.Node, fe *exprfile.Error, lines []string) (line, col int) {
	switch n.Style {
	case yaml.LiteralStyle: // `when: |`: expression line 1 is the next file line
		return n.Line + fe.Line, blockIndent(lines, n.Line) + 1 + fe.Column
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if fe.Line == 1 {
			return n.Line, n.Column + 1 + fe.Column
		}
	case yaml.FoldedStyle:
		return n.Line, n.Column // lines were joined; point at the value
	default:
		if fe.Line == 1 {
			return n.Line, n.Column + fe.Column
		}
	}
	return n.Line + fe.Line - 1, n.Column
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func (l *loader) throttle(file string, rn *yaml.Node, ty *throttleYAML) *Throttle {
	t := &Throttle{}
	for i := range ty.By {
		f := &ty.By[i]
		if f.Kind != yaml.ScalarNode || !slices.Contains(event.Fields, f.Value) || f.Value == "payload" || f.Value == "push_args" {
			l.diags.At(file, f, "throttle: by: unknown field %q", f.Value)
			continue
		}
		t.By = append(t.By, f.Value)
	}
	if ty.Window.Kind == 0 {
		l.diags.At(file, rn, "throttle: window is required (e.g. 10m)")
		return t
	}
	if err := ty.Window.Decode(&t.Window); err != nil || t.Window <= 0 {
		l.diags.At(file, &ty.Window, "throttle: window: want a positive duration such as 30s or 10m")
	}
	return t
}

var stepKeys = []string{"action", "type", "with"}

func (l *loader) step(file string, r *Rule, i int, n *yaml.Node) *Step {
	if n.Kind != yaml.MappingNode {
		l.diags.At(file, n, "rule %q: do[%d]: want a mapping with action or type", r.Name, i)
		return nil
	}
	name, rest := splitKey(n, "action")
	typ, settings := splitKey(rest, "type")
	with, settings := splitKey(settings, "with")
	var inst actionapi.Instance
	s := &Step{Index: i}
	switch {
	case name != nil && typ != nil:
		l.diags.At(file, typ, "rule %q: do[%d]: give either action (a named action) or type (an inline one), not both", r.Name, i)
		return nil
	case name != nil:
		for j := 0; j+1 < len(settings.Content); j += 2 {
			k := settings.Content[j]
			l.diags.At(file, k, "rule %q: do[%d]: unknown key %q (a step naming an action takes only %s; settings belong under actions:)",
				r.Name, i, k.Value, strings.Join(stepKeys, ", "))
		}
		a, ok := l.actions[name.Value]
		if !ok && l.broken[name.Value] {
			return nil // already reported where the action is defined
		}
		if !ok {
			l.diags.At(file, name, "rule %q: do[%d]: undefined action %q", r.Name, i, name.Value)
			return nil
		}
		inst, s.Action, s.Type, s.Delivery = a.Instance, a.Name, a.Type, a.Delivery
	case typ != nil:
		s.Action = fmt.Sprintf("%s/do[%d]", r.Name, i)
		delivery, rest := splitKey(settings, "delivery")
		policy, ok := l.delivery(file, typ, delivery)
		if inst = l.open(file, n, s.Action, typ, rest); inst == nil || !ok {
			return nil
		}
		s.Delivery = policy
		s.Type = typ.Value
	default:
		l.diags.At(file, n, "rule %q: do[%d]: want action (a named action) or type (an inline one)", r.Name, i)
		return nil
	}
	if with != nil && with.Kind != yaml.MappingNode {
		l.diags.At(file, with, "rule %q: do[%d]: with: want a mapping of parameters", r.Name, i)
		return nil
	}
	step, err := inst.Step(actionapi.Params{File: file, Node: with, Secrets: l.set.Secrets})
	if err != nil {
		l.addErr(file, n, err)
		return nil
	}
	s.Step = step
	return s
}

// hasFailed reports whether n or a node under it failed to expand.
func (l *loader) hasFailed(n *yaml.Node) bool {
	if n == nil {
		return false
	}
	if l.failed[n] {
		return true
	}
	return slices.ContainsFunc(n.Content, l.hasFailed)
}

// blockIndent is the indentation of a block scalar's content: that of the
// first non-blank line after its indicator on line (1-based).
func blockIndent(lines []string, line int) int {
	for _, s := range lines[min(line, len(lines)):] {
		if strings.TrimSpace(s) != "" {
			return len(s) - len(strings.TrimLeft(s, " "))
		}
	}
	return 0
}
