package engine

import (
	"errors"
	"fmt"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

// ErrNoSuchRule is returned for a rule name the loaded rules lack.
var ErrNoSuchRule = errors.New("no such rule")

// RuleTrial is what a loaded rule would do with one event.
type RuleTrial struct {
	Rule     string
	Disabled bool        // enabled: false, so it matches nothing
	Shadow   bool        // mode: shadow, so its matches are recorded and its steps never run
	Tried    rules.Tried // its condition on the event
	// Steps are what each of its actions would send were it to match.
	Steps []PlannedStep
}

// SampleSources names the sources a pasted callback can be decoded as,
// sorted; the family's name stands for every source name it takes.
func (e *Engine) SampleSources() []string {
	var out []string
	for _, s := range e.opts.Sources.All() {
		out = append(out, s.Name)
	}
	return out
}

// DecodeSample decodes body as intake would a callback from the source
// name, with its domain mapped as accepting it would: the decoding
// `livehook test` gives an event file. Nothing is recorded.
func (e *Engine) DecodeSample(name string, body []byte) (*event.Event, error) {
	src, ok := e.opts.Sources.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%q is not a source name", name)
	}
	ev, err := src.DecodeFile(name, body)
	if err != nil {
		return nil, fmt.Errorf("as a callback from %s: %w", name, err)
	}
	set := e.acquire()
	defer set.Release()
	set.MapDomain(ev)
	return ev, nil
}

// TryCondition runs a condition typed in the console on ev, on the
// engine's clock. Nothing is recorded or sent.
func (e *Engine) TryCondition(src string, ev *event.Event) rules.Tried {
	set := e.acquire()
	defer set.Release()
	return redactTried(set, rules.TryCondition(src, ev, e.opts.Deps.Now))
}

// TryRule shows what the loaded rule name makes of ev: whether its
// condition holds, the fields it reads, and what each of its steps would
// send, planned as `livehook test` plans them. Nothing is sent.
func (e *Engine) TryRule(name string, ev *event.Event) (RuleTrial, error) {
	set := e.acquire()
	defer set.Release()
	r := set.Rule(name)
	switch {
	case r == nil:
		return RuleTrial{}, fmt.Errorf("rule %q: %w", name, ErrNoSuchRule)
	case r.Temporal != nil:
		return RuleTrial{}, fmt.Errorf("rule %q is a rule over time: what it does depends on a timeline of events; try it with a rule test file (livehook test)", name)
	}
	return RuleTrial{Rule: r.Name, Disabled: !r.Enabled, Shadow: r.Shadow, Tried: redactTried(set, rules.TryCondition(r.When, ev, e.opts.Deps.Now)), Steps: PlanMatch(set, r, ev)}, nil
}

// redactTried hides the configured secrets in what a condition's errors
// say.
func redactTried(set *rules.Set, t rules.Tried) rules.Tried {
	if t.Problem != nil {
		p := *t.Problem
		p.Msg = set.Secrets.Redact(p.Msg)
		t.Problem = &p
	}
	for i := range t.Reads {
		t.Reads[i].Error = set.Secrets.Redact(t.Reads[i].Error)
	}
	return t
}
