package rules

import (
	"fmt"
	"math/bits"

	"github.com/expr-lang/expr/vm"

	"github.com/livehook/livehook/engine/event"
)

// Matcher evaluates conditions. It reuses one expr VM and one candidate
// set, so it is not safe for concurrent use: keep one per worker.
type Matcher struct {
	vm   vm.VM
	bits []uint64 // the rules the index leaves for the event being matched
}

// EvalError is a condition that failed at run time, e.g. comparing a
// payload string with a number. The rule counts as not matched.
type EvalError struct {
	Rule *Rule
	Err  error
}

func (e *EvalError) Error() string { return fmt.Sprintf("rule %q: when: %v", e.Rule.Name, e.Err) }

// Match returns the enabled single-event rules with steps whose condition
// holds for ev, in file order, stopping after a matching rule with stop: true. Only
// the rules the set's index leaves are evaluated; the others could
// neither match nor fail. Rules over time are the correlate stage's.
func (m *Matcher) Match(s *Set, ev *event.Event) (matched []*Rule, errs []*EvalError) {
	m.bits = s.candidates(ev, m.bits)
	var env any = *ev // boxed once per event, not once per rule
	for w, word := range m.bits {
		for ; word != 0; word &= word - 1 {
			r := s.Rules[w<<6|bits.TrailingZeros64(word)]
			if !r.Enabled || r.Temporal != nil || len(r.Steps) == 0 {
				continue // off, the correlate stage's, or an answer rule with nothing to do
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
				return matched, errs
			}
		}
	}
	return matched, errs
}
