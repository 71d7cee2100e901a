package rules

import (
	"reflect"
	"slices"

	"github.com/livehook/livehook/engine/event"
)

// index narrows the rules worth evaluating for an event. A rule with
// constraints sits in the buckets of the one it shares with the fewest
// other rules; every other enabled rule is a candidate for every event.
// A rule outside an event's buckets cannot match it, and evaluating it
// could not fail (see constraints), so skipping it changes nothing.
type index struct {
	always []uint64 // a bit per rule of the set, in rule order
	terms  []*termIndex
}

// termIndex holds the rules placed by one term's value.
type termIndex struct {
	term    term
	exact   map[string][]int // value → positions of the rules
	prefix  map[string][]int // prefix → positions of the rules
	lengths []int            // of the prefixes, ascending
}

func newIndex(rules []*Rule) *index {
	type bucket struct {
		term   string
		prefix bool
		value  string
	}
	shared := map[bucket]int{}
	for _, r := range rules {
		if !r.Enabled {
			continue
		}
		for _, c := range r.constraints {
			for _, v := range c.values {
				shared[bucket{c.term.name, c.prefix, v}]++
			}
		}
	}
	x := &index{always: make([]uint64, words(len(rules)))}
	terms := map[string]*termIndex{}
	for i, r := range rules {
		if !r.Enabled {
			continue
		}
		best, cost := -1, 0
		for j, c := range r.constraints {
			n := 0
			for _, v := range c.values {
				n += shared[bucket{c.term.name, c.prefix, v}]
			}
			if best < 0 || n < cost {
				best, cost = j, n
			}
		}
		if best < 0 {
			x.always[i>>6] |= 1 << (i & 63)
			continue
		}
		c := r.constraints[best]
		t := terms[c.term.name]
		if t == nil {
			t = &termIndex{term: c.term, exact: map[string][]int{}, prefix: map[string][]int{}}
			terms[c.term.name] = t
			x.terms = append(x.terms, t)
		}
		for _, v := range c.values {
			if c.prefix {
				t.prefix[v] = append(t.prefix[v], i)
			} else {
				t.exact[v] = append(t.exact[v], i)
			}
		}
	}
	for _, t := range x.terms {
		for p := range t.prefix {
			t.lengths = append(t.lengths, len(p))
		}
		slices.Sort(t.lengths)
		t.lengths = slices.Compact(t.lengths)
	}
	return x
}

// candidates fills bits, sized for the set, with the rules to evaluate.
func (x *index) candidates(ev *event.Event, bits []uint64) {
	copy(bits, x.always)
	rv := reflect.ValueOf(ev).Elem()
	for _, t := range x.terms {
		v := t.term.value(rv)
		mark(bits, t.exact[v])
		for _, n := range t.lengths {
			if n > len(v) {
				break
			}
			mark(bits, t.prefix[v[:n]])
		}
	}
}

func mark(bits []uint64, rules []int) {
	for _, i := range rules {
		bits[i>>6] |= 1 << (i & 63)
	}
}

func words(rules int) int { return (rules + 63) >> 6 }

// candidates returns buf filled with the rules to evaluate for ev: those
// the index leaves, or all of them for a set built without one.
func (s *Set) candidates(ev *event.Event, buf []uint64) []uint64 {
	n := words(len(s.Rules))
	buf = slices.Grow(buf[:0], n)[:n]
	if s.index != nil {
		s.index.candidates(ev, buf)
		return buf
	}
	for i := range buf {
		buf[i] = ^uint64(0)
	}
	if r := len(s.Rules) & 63; r != 0 {
		buf[n-1] = 1<<r - 1
	}
	return buf
}
