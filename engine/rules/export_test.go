package rules

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/expr-lang/expr/vm"

	"github.com/livehook/livehook/engine/event"
)

// Unindexed is s without its index: Match evaluates every rule.
func Unindexed(s *Set) *Set { return &Set{Rules: s.Rules} }

// Eval evaluates one rule's condition on its own, as the reference the
// index is checked against; a rule without a condition holds.
func Eval(r *Rule, ev *event.Event) (bool, error) {
	if r.program == nil {
		return true, nil
	}
	out, err := vm.Run(r.program, *ev)
	ok, _ := out.(bool)
	return ok, err
}

// Candidates counts the rules the index leaves to evaluate for ev.
func Candidates(s *Set, ev *event.Event) int {
	n := 0
	for _, w := range s.candidates(ev, nil) {
		n += bits.OnesCount64(w)
	}
	return n
}

// Constraints describes what the analysis found in the rule's condition.
func Constraints(r *Rule) []string {
	var out []string
	for _, c := range r.constraints {
		out = append(out, describe(c))
	}
	return out
}

// IndexedOn describes the constraint that places the named rule in the
// set's index, or says it is evaluated for every event.
func IndexedOn(s *Set, name string) string {
	for i, r := range s.Rules {
		if r.Name != name {
			continue
		}
		if s.index.always[i>>6]&(1<<(i&63)) != 0 {
			return "always"
		}
		for _, t := range s.index.terms {
			c := constraint{term: t.term}
			for v, rs := range t.exact {
				if slices.Contains(rs, i) {
					c.values = append(c.values, v)
				}
			}
			for v, rs := range t.prefix {
				if slices.Contains(rs, i) {
					c.prefix, c.values = true, append(c.values, v)
				}
			}
			if len(c.values) > 0 {
				slices.Sort(c.values)
				return describe(c)
			}
		}
		return "never"
	}
	return "no such rule"
}

func describe(c constraint) string {
	switch {
	case c.prefix:
		return fmt.Sprintf("%s startsWith %q", c.term.name, c.values[0])
	case len(c.values) == 1:
		return fmt.Sprintf("%s == %q", c.term.name, c.values[0])
	}
	q := make([]string, len(c.values))
	for i, v := range c.values {
		q[i] = fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%s in [%s]", c.term.name, strings.Join(q, " "))
}
