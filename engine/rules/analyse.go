package rules

import (
	"reflect"
	"regexp/syntax"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm"

	"github.com/livehook/livehook/engine/event"
)

// clock makes now() in conditions read the engine's clock (the one the
// rules were loaded with) instead of the wall clock, so that rule tests on
// a virtual clock see their own time.
func clock(now func() time.Time) []expr.Option {
	if now == nil {
		return nil
	}
	return []expr.Option{expr.DisableBuiltin("now"),
		expr.Function("now", func(...any) (any, error) { return now(), nil }, new(func() time.Time))}
}

// exprOptions compile every condition: over the event's fields, boolean.
var exprOptions = []expr.Option{expr.Env(event.Event{}), expr.AsBool(), expr.WarnOnAny()}

// constraint is a conjunct the index can answer: the term's value equals
// one of values (== or in), or starts with values[0] (startsWith, or
// matches with an anchored literal prefix).
type constraint struct {
	term   term
	prefix bool
	values []string
}

// term is a string-valued field of the event (`stream`), or one key of a
// map[string]string field (`push_args.callback_orderid`).
type term struct {
	name  string        // as a condition writes it; names the term uniquely
	field int           // in event.Event
	key   reflect.Value // the key, for a map field
}

// value is the term's value for the event ev points to, as a condition
// reads it: a missing map key reads as "".
func (t *term) value(ev reflect.Value) string {
	f := ev.Field(t.field)
	if !t.key.IsValid() {
		return f.String()
	}
	v := f.MapIndex(t.key)
	if !v.IsValid() {
		return ""
	}
	return v.String()
}

// eventFields are the event's fields under their condition names.
var eventFields = func() map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	t := reflect.TypeFor[event.Event]()
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && f.Tag.Get("expr") != "" {
			m[f.Tag.Get("expr")] = f
		}
	}
	return m
}()

// compileCondition compiles a condition and finds the constraints an
// event must meet for the condition to hold.
func compileCondition(src string, now func() time.Time) (*vm.Program, []constraint, error) {
	opts := append(slices.Clone(exprOptions), clock(now)...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, nil, err
	}
	c := conf.CreateNew()
	for _, o := range opts {
		o(c)
	}
	tree, err := checker.ParseCheck(src, c) // typed, and not yet rewritten by the optimizer
	if err != nil {
		return prog, nil, nil // compiled above, so unreachable; unindexed is always correct
	}
	return prog, constraints(tree.Node), nil
}

// constraints reads the top-level && chain of a condition. expr evaluates
// it left to right and stops at the first false conjunct, so a conjunct
// the index answers "false" for proves the whole condition false without
// an error only if every conjunct before it can neither fail nor yield a
// non-boolean. The chain is read up to the first conjunct that might.
func constraints(root ast.Node) []constraint {
	var out []constraint
	for _, n := range conjuncts(root, nil) {
		if c, ok := constraintOf(n); ok {
			out = append(out, c)
			continue
		}
		if !safe(n) || !is(n, reflect.Bool) {
			break
		}
	}
	return out
}

func conjuncts(n ast.Node, out []ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		return conjuncts(b.Right, conjuncts(b.Left, out))
	}
	return append(out, n)
}

// constraintOf recognises `term == "c"`, `"c" == term`, `term in [...]`
// with literal elements (only the strings can equal a string),
// `term startsWith "p"` and `term matches "^p..."`. An empty prefix
// constrains nothing and is left to the conjunct that follows.
func constraintOf(n ast.Node) (constraint, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return constraint{}, false
	}
	t, ok := termOf(b.Left)
	switch b.Operator {
	case "==":
		l, lok := b.Left.(*ast.StringNode)
		r, rok := b.Right.(*ast.StringNode)
		if ok && rok {
			return constraint{term: t, values: []string{r.Value}}, true
		}
		if t, ok := termOf(b.Right); ok && lok {
			return constraint{term: t, values: []string{l.Value}}, true
		}
	case "in":
		arr, aok := b.Right.(*ast.ArrayNode)
		if !ok || !aok || !literals(arr) {
			return constraint{}, false
		}
		c := constraint{term: t, values: []string{}}
		for _, e := range arr.Nodes {
			if s, ok := e.(*ast.StringNode); ok {
				c.values = append(c.values, s.Value)
			}
		}
		slices.Sort(c.values)
		c.values = slices.Compact(c.values)
		return c, true
	case "startsWith":
		if s, sok := b.Right.(*ast.StringNode); ok && sok && s.Value != "" {
			return constraint{term: t, prefix: true, values: []string{s.Value}}, true
		}
	case "matches":
		if s, sok := b.Right.(*ast.StringNode); ok && sok {
			if p := regexPrefix(s.Value); p != "" {
				return constraint{term: t, prefix: true, values: []string{p}}, true
			}
		}
	}
	return constraint{}, false
}

// termOf recognises a string field, or a constant key of a string map
// field, read without `?.` (whose nil handling differs).
func termOf(n ast.Node) (term, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		f, ok := eventFields[n.Value]
		if ok && f.Type.Kind() == reflect.String && is(n, reflect.String) {
			return term{name: n.Value, field: f.Index[0]}, true
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		key, kok := n.Property.(*ast.StringNode)
		if !ok || !kok || n.Optional || n.Method {
			return term{}, false
		}
		f, ok := eventFields[id.Value]
		if ok && f.Type.Kind() == reflect.Map && f.Type.Key().Kind() == reflect.String &&
			f.Type.Elem().Kind() == reflect.String && is(n, reflect.String) {
			return term{name: id.Value + "." + key.Value, field: f.Index[0], key: reflect.ValueOf(key.Value)}, true
		}
	}
	return term{}, false
}

// regexPrefix is the literal text every match of pattern must start the
// string with, as Go's regexp (expr's) parses it: the literals after a
// leading ^ or \A, or what all alternatives of an alternation share.
// `(?m)^` anchors at lines and `(?i)` folds case, so neither yields a
// prefix; nor does a rune that invalid input could match.
func regexPrefix(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	return anchoredPrefix(re)
}

func anchoredPrefix(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpCapture:
		return anchoredPrefix(re.Sub[0])
	case syntax.OpAlternate:
		p := anchoredPrefix(re.Sub[0])
		for _, s := range re.Sub[1:] {
			q := anchoredPrefix(s)
			n := 0
			for n < len(p) && n < len(q) && p[n] == q[n] {
				n++
			}
			p = p[:n]
		}
		return p
	case syntax.OpConcat:
		if re.Sub[0].Op != syntax.OpBeginText {
			return ""
		}
		var b strings.Builder
		for _, s := range re.Sub[1:] {
			if s.Op != syntax.OpLiteral || s.Flags&syntax.FoldCase != 0 {
				break
			}
			for _, r := range s.Rune {
				if r == utf8.RuneError || !utf8.ValidRune(r) {
					return b.String()
				}
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	return ""
}

// safe reports whether evaluating n can never fail, whatever the event.
// It is conservative: anything it does not know (calls, `?.`, `??`, %,
// indexing, any-typed operands of ordering or string operators, fields
// beyond one map level) might fail.
func safe(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.NilNode, *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode, *ast.StringNode:
		return true
	case *ast.IdentifierNode:
		_, ok := eventFields[n.Value]
		return ok
	case *ast.MemberNode:
		// A map read with a constant key yields a value, or the element
		// type's zero value when the key or the whole map is missing.
		id, ok := n.Node.(*ast.IdentifierNode)
		_, kok := n.Property.(*ast.StringNode)
		if !ok || !kok || n.Optional || n.Method {
			return false
		}
		f, ok := eventFields[id.Value]
		return ok && f.Type.Kind() == reflect.Map && f.Type.Key().Kind() == reflect.String
	case *ast.UnaryNode:
		switch n.Operator {
		case "!", "not":
			return safe(n.Node) && is(n.Node, reflect.Bool)
		case "-", "+":
			return safe(n.Node) && numeric(n.Node)
		}
		return false
	case *ast.BinaryNode:
		return safeBinary(n)
	}
	return false
}

func safeBinary(n *ast.BinaryNode) bool {
	if !safe(n.Left) {
		return false
	}
	l := n.Left
	switch n.Operator {
	case "in": // of a string: over literals, it compares and never indexes a map by a foreign type
		arr, ok := n.Right.(*ast.ArrayNode)
		return ok && is(l, reflect.String) && literals(arr)
	case "matches": // a constant pattern is compiled with the condition
		_, ok := n.Right.(*ast.StringNode)
		return ok && is(l, reflect.String)
	}
	r := n.Right
	if !safe(r) {
		return false
	}
	switch n.Operator {
	case "==", "!=":
		return true // equality of any two values is defined
	case "&&", "and", "||", "or":
		return is(l, reflect.Bool) && is(r, reflect.Bool)
	case "<", ">", "<=", ">=", "+":
		return (numeric(l) && numeric(r)) || (is(l, reflect.String) && is(r, reflect.String))
	case "-", "*", "/": // division is in floating point: no division by zero
		return numeric(l) && numeric(r)
	case "startsWith", "endsWith", "contains":
		return is(l, reflect.String) && is(r, reflect.String)
	}
	return false
}

func literals(arr *ast.ArrayNode) bool {
	for _, e := range arr.Nodes {
		switch e.(type) {
		case *ast.NilNode, *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode, *ast.StringNode:
		default:
			return false
		}
	}
	return true
}

// is reports the checker's static kind; an any-typed node is none.
func is(n ast.Node, k reflect.Kind) bool { return n.Type().Kind() == k }

func numeric(n ast.Node) bool {
	switch n.Type().Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}
