package rules

import (
	"fmt"

	"github.com/expr-lang/expr/vm"

	"github.com/livehook/livehook/engine/event"
)

// Matcher evaluates conditions. It reuses one expr VM, so it is not safe
// for concurrent use: keep one per worker.
type Matcher struct{ vm vm.VM }

// EvalError is a condition that failed at run time, e.g. comparing a
// payload string with a number. The rule counts as not matched.
type EvalError struct {
	Rule *Rule
	Err  error
}

func (e *EvalError) Error() string { return fmt.Sprintf("rule %q: when: %v", e.Rule.Name, e.Err) }

// Match returns the enabled single-event rules whose condition holds for
// ev, in file order, stopping after a matching rule with stop: true. Rules
// over time are the correlate stage's.
func (m *Matcher) Match(s *Set, ev *event.Event) (matched []*Rule, errs []*EvalError) {
	var env any = *ev // boxed once per event, not once per rule
	for _, r := range s.Rules {
		if !r.Enabled || r.Temporal != nil {
			continue
		}
		if r.program != nil {
			out, err := m.vm.Run(r.program, env)
			if err != nil {
				errs = append(errs, &EvalError{Rule: r, Err: err})
				continue
			}
			if ok, _ := out.(bool); !ok {
				continue
			}
		}
		matched = append(matched, r)
		if r.Stop {
			break
		}
	}
	return matched, errs
}
