package rules_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

// The property the index must hold: matching through it gives exactly what
// evaluating every rule gives, the matched rules in order and the errors,
// for random rule sets and random events. Values come from a small
// alphabet, so equalities and prefixes often hold.
var values = []string{"", "a", "ab", "abc", "b", "ba", "A", "é", "a.b", "x-1", "x\nab", "\xffa"}

// patterns mix anchored literal starts with the cases that must not be
// read as one.
var patterns = []string{
	`^a`, `^ab.*`, `^ab|^ac`, `(?i)^a`, `(?m)^a`, `a`, `^\Qa.\E`, `(^ab)`, `^ab?`,
	`^[ab]c`, `\Aab`, `^a+b`, `^é`, `^`, `^$`, `^\x{FFFD}`, `^a|b`, `b$`, `.b`, `^a.b`, `^ab?c`,
}

// stringFields are the event's string fields under their condition names:
// new fields join the test as they are added.
var stringFields = func() []string {
	var out []string
	t := reflect.TypeFor[event.Event]()
	for i := range t.NumField() {
		if f := t.Field(i); f.Type.Kind() == reflect.String && f.Tag.Get("expr") != "" {
			out = append(out, f.Tag.Get("expr"))
		}
	}
	return out
}()

type gen struct{ r *rand.Rand }

func (g gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }
func (g gen) value() string           { return fmt.Sprintf("%q", g.pick(values)) }

// term is a string field, mostly a few common ones so that rules share them.
func (g gen) term() string {
	switch g.r.IntN(8) {
	case 0:
		return g.pick(stringFields)
	case 1:
		return g.pick([]string{"push_args.k", `push_args["j"]`})
	}
	return g.pick([]string{"stream", "app", "kind", "uri"})
}

// atom is one comparison: one the index reads, one it may read past, or
// one that can fail at run time.
func (g gen) atom() string {
	f, v := g.term(), g.value()
	constraints := []func() string{
		func() string { return f + " == " + v },
		func() string { return v + " == " + f },
		func() string { return fmt.Sprintf("%s in [%s, %s]", f, v, g.value()) },
		func() string { return f + " in []" },
		func() string { return fmt.Sprintf("%s in [%s, 1, nil, true]", f, v) },
		func() string { return f + " startsWith " + v },
		func() string { return fmt.Sprintf("%s matches %q", f, g.pick(patterns)) },
	}
	safe := []func() string{
		func() string { return f + " != " + v },
		func() string { return f + " endsWith " + v },
		func() string { return f + " contains " + v },
		func() string { return "not (" + f + " == " + v + ")" },
		func() string { return "!(" + f + " startsWith " + v + ")" },
		func() string { return f + " not in [" + v + "]" },
		func() string { return f + " < " + v },
		func() string { return f + " == nil" },
		func() string { return f + " + " + v + " == " + g.value() },
		func() string { return "duration < 10" },
		func() string { return "stop_time - start_time > 30" },
		func() string { return "1 / duration > 0" },
		func() string { return "-duration < 0" },
		func() string { return g.pick([]string{"true", "false"}) },
		func() string { return "payload.x == " + v },
		func() string { return "payload.x != nil" },
		func() string { return "(" + g.atom() + " || " + g.atom() + ")" },
		func() string { return "(" + g.atom() + " && " + g.atom() + ")" },
	}
	failing := []func() string{
		func() string { return "payload.x > 3" },
		func() string { return "payload.x startsWith " + v },
		func() string { return fmt.Sprintf("payload.x in [%s, %s]", v, g.value()) },
		func() string { return fmt.Sprintf("payload.x matches %q", g.pick(patterns)) },
		func() string { return "payload.flag" },
		func() string { return "!payload.flag" },
		func() string { return "(payload.flag || false)" },
		func() string { return "(payload.flag and true)" },
		func() string { return "start_time % (stop_time - start_time) == 0" },
		func() string { return "(not payload.flag || " + f + " == " + v + ")" },
		func() string { return "payload.x.y == " + v },
		func() string { return "payload?.x == " + v },
		func() string { return "len(" + f + ") > 1" },
		func() string { return "now() > received_at" },
		func() string { return "start_time % 2 == 0" },
		func() string { return "int(payload.n) > 0" },
		func() string { return "(payload.x ?? " + v + ") == " + v },
	}
	forms := [][]func() string{constraints, constraints, safe, failing}[g.r.IntN(4)]
	return forms[g.r.IntN(len(forms))]()
}

func (g gen) condition() string {
	n := 1 + g.r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = g.atom()
	}
	c := parts[0]
	if n == 1 && c == "payload.flag" {
		c += " && true" // alone it is not known to be a boolean, which the loader refuses
	}
	for _, p := range parts[1:] {
		c += g.pick([]string{" && ", " && ", " and "}) + p
	}
	switch g.r.IntN(10) {
	case 0:
		return c + " || " + g.atom()
	case 1:
		return "not (" + c + ")"
	}
	return c
}

func (g gen) rules(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    do: [{type: log}]\n", i)
		if g.r.IntN(20) > 0 {
			fmt.Fprintf(&b, "    when: %q\n", g.condition()) // %q of these is a YAML double-quoted scalar
		}
		if g.r.IntN(10) == 0 {
			b.WriteString("    enabled: false\n")
		}
		if g.r.IntN(8) == 0 {
			b.WriteString("    stop: true\n")
		}
	}
	return b.String()
}

// event sets every string field from the alphabet or leaves it empty, and
// gives push_args and payload each shape a condition may meet.
func (g gen) event() *event.Event {
	ev := &event.Event{}
	v := reflect.ValueOf(ev).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			if g.r.IntN(3) > 0 {
				f.SetString(g.pick(values))
			}
		case reflect.Float64:
			f.SetFloat([]float64{0, 5, 61.5}[g.r.IntN(3)])
		case reflect.Int64:
			f.SetInt([]int64{0, 1714564803, 1714564865}[g.r.IntN(3)])
		}
	}
	switch g.r.IntN(3) {
	case 1:
		ev.PushArgs = map[string]string{}
	case 2:
		ev.PushArgs = map[string]string{"k": g.pick(values), "j": g.pick(values)}
	}
	if g.r.IntN(4) > 0 {
		ev.Payload = map[string]any{}
		xs := []any{g.pick(values), int64(5), 1.5, true, nil, map[string]any{"y": g.pick(values)}}
		for _, k := range []string{"x", "flag", "n"} {
			if g.r.IntN(4) > 0 {
				ev.Payload[k] = xs[g.r.IntN(len(xs))]
			}
		}
	}
	return ev
}

// reference is the rules' meaning, rule by rule: every enabled rule whose
// condition holds, in order, up to the first matching one with stop:
// true; a condition that fails is an error and no match.
func reference(set *rules.Set, ev *event.Event) (matched, errs []string) {
	for _, r := range set.Rules {
		if !r.Enabled {
			continue
		}
		ok, err := rules.Eval(r, ev)
		if err != nil {
			errs = append(errs, r.Name+": "+err.Error())
			continue
		}
		if ok {
			matched = append(matched, r.Name)
			if r.Stop {
				break
			}
		}
	}
	return matched, errs
}

// coverage counts what a run exercised, so that agreement cannot come from
// an index that skips nothing or events that match nothing.
type coverage struct {
	sets, events, matched, errors, stopped int
	placed                                 map[string]int // "exact", "prefix", "always", "never"
	placedMatched                          int            // matches of rules in the index's buckets
	evaluated, skipped                     int            // conditions evaluated and left out through the index
}

// checkAgreement loads one random rule set and matches random events
// through the index and rule by rule.
func checkAgreement(t *testing.T, seed uint64, nRules, nEvents int, cov *coverage) {
	g := gen{rand.New(rand.NewPCG(seed, seed>>32|1))}
	src := g.rules(nRules)
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Load(path, options(actionapi.Default(), nil))
	if err != nil {
		t.Fatalf("seed %d: load:\n%v\n%s", seed, err, src)
	}
	defer set.Retire()
	cov.sets++
	placed := map[string]bool{}
	enabled := 0
	for _, r := range set.Rules {
		on := rules.IndexedOn(set, r.Name)
		switch {
		case !r.Enabled:
			continue
		case strings.Contains(on, " startsWith "):
			cov.placed["prefix"]++
			placed[r.Name] = true
		case strings.Contains(on, " == ") || strings.Contains(on, " in "):
			cov.placed["exact"]++
			placed[r.Name] = true
		default:
			cov.placed[on]++
		}
		enabled++
	}
	var m rules.Matcher
	for range nEvents {
		ev := g.event()
		wantMatched, wantErrs := reference(set, ev)
		got, gotErrs := m.Match(set, ev)
		var gotMatched, gotErrStrs []string
		for _, r := range got {
			gotMatched = append(gotMatched, r.Name)
		}
		for _, e := range gotErrs {
			gotErrStrs = append(gotErrStrs, e.Rule.Name+": "+e.Err.Error())
		}
		if !slices.Equal(gotMatched, wantMatched) || !slices.Equal(gotErrStrs, wantErrs) {
			t.Fatalf("seed %d: event %+v\nmatched %v, want %v\nerrors %q, want %q\nrules:\n%s",
				seed, *ev, gotMatched, wantMatched, gotErrStrs, wantErrs, src)
		}
		cov.events++
		n := rules.Candidates(set, ev)
		cov.evaluated += n
		cov.skipped += enabled - n
		for _, name := range wantMatched {
			if placed[name] {
				cov.placedMatched++
			}
		}
		cov.matched += len(wantMatched)
		cov.errors += len(wantErrs)
		if n := len(wantMatched); n > 0 && set.Rule(wantMatched[n-1]).Stop {
			cov.stopped++
		}
	}
}

func TestIndexAgreesWithEveryRule(t *testing.T) {
	cov := &coverage{placed: map[string]int{}}
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range uint64(seeds) {
		checkAgreement(t, seed, 30, 200, cov)
	}
	t.Logf("%+v", *cov)
	if cov.placed["exact"] == 0 || cov.placed["prefix"] == 0 || cov.placed["always"] == 0 || cov.placed["never"] == 0 {
		t.Errorf("placements %v: the rules exercise too little of the index", cov.placed)
	}
	if cov.placedMatched < cov.events/10 || cov.skipped < cov.evaluated/4 {
		t.Errorf("%d rules in buckets matched, %d evaluations left out against %d made: the index is barely used", cov.placedMatched, cov.skipped, cov.evaluated)
	}
	if cov.matched < cov.events/2 || cov.errors < cov.events/10 || cov.stopped < cov.events/50 {
		t.Errorf("%d events: %d matches, %d errors, %d stops: too few to tell", cov.events, cov.matched, cov.errors, cov.stopped)
	}
}

// FuzzIndexAgrees explores further rule sets from seeds.
func FuzzIndexAgrees(f *testing.F) {
	f.Add(uint64(1))
	f.Add(uint64(1) << 40)
	f.Fuzz(func(t *testing.T, seed uint64) {
		checkAgreement(t, seed, 12, 40, &coverage{placed: map[string]int{}})
	})
}
