package rules

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/conf"
	exprfile "github.com/expr-lang/expr/file"

	"github.com/livehook/livehook/engine/event"
)

// Tried is what a condition makes of one event, for the console's
// playground.
type Tried struct {
	Match bool
	// Problem is why the condition does not compile (with its position)
	// or failed on the event; nil when it ran.
	Problem *Problem
	// Reads are the event's fields the condition reads, in the order the
	// text names them, with their values in the event.
	Reads []Read
}

// Problem is a condition that does not compile, at Line and Col (from
// 1) of its text, or fails at run time (Line 0).
type Problem struct {
	Line, Col int
	Msg       string
}

// Read is one field a condition reads: `stream`, `payload.code`.
type Read struct {
	Path  string
	Value any // nil for a key the event lacks
	// Error is why the value could not be read (a member of a missing
	// object): the condition meets the same error or an `?.` guard there.
	Error string
}

// TryCondition compiles src as a rule's when: and runs it on ev, with
// now() reading the given clock. It is text the operator typed: it is
// not expanded (${VAR} stays as written), so no setting reaches it.
func TryCondition(src string, ev *event.Event, now func() time.Time) Tried {
	if strings.TrimSpace(src) == "" {
		return Tried{Match: true} // no when: matches every event
	}
	if len(src) > maxCondition {
		return Tried{Problem: &Problem{Line: 1, Col: 1, Msg: "longer than the limit of a condition"}}
	}
	opts := append(slices.Clone(exprOptions), clock(now)...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *exprfile.Error
		if errors.As(err, &fe) {
			return Tried{Problem: &Problem{Line: max(fe.Line, 1), Col: fe.Column + 1, Msg: fe.Message}}
		}
		return Tried{Problem: &Problem{Line: 1, Col: 1, Msg: firstLine(err.Error())}}
	}
	var t Tried
	c := conf.CreateNew()
	for _, o := range opts {
		o(c)
	}
	if tree, err := checker.ParseCheck(src, c); err == nil { // the typed tree, before the optimizer rewrites it
		t.Reads = reads(tree.Node, ev)
	}
	out, err := expr.Run(prog, *ev)
	if err != nil {
		t.Problem = &Problem{Msg: message(err)}
		return t
	}
	t.Match, _ = out.(bool)
	return t
}

// reads finds the event's fields a condition's tree reads: a field, or a
// chain of constant keys below one, the longest chain of each.
func reads(root ast.Node, ev *event.Event) []Read {
	type found struct {
		path string
		node ast.Node
		from int
	}
	var all []found
	ast.Find(root, func(n ast.Node) bool {
		if p, ok := readPath(n); ok {
			all = append(all, found{p, n, n.Location().From})
		}
		return false
	})
	slices.SortStableFunc(all, func(a, b found) int { return cmp.Compare(a.from, b.from) })
	var out []Read
	seen := map[string]bool{}
	for _, f := range all {
		if seen[f.path] || slices.ContainsFunc(all, func(g found) bool {
			return strings.HasPrefix(g.path, f.path+".") // a longer chain shows the same read
		}) {
			continue
		}
		seen[f.path] = true
		r := Read{Path: f.path}
		if prog, err := expr.Compile(f.node.String(), expr.Env(event.Event{})); err != nil {
			r.Error = message(err)
		} else if v, err := expr.Run(prog, *ev); err != nil {
			r.Error = message(err)
		} else {
			r.Value = v
		}
		out = append(out, r)
	}
	return out
}

// readPath names an event field (`stream`) or a chain of constant keys
// below one (`payload.code`), as a condition writes it.
func readPath(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		_, ok := eventFields[n.Value]
		return n.Value, ok
	case *ast.MemberNode:
		key, ok := n.Property.(*ast.StringNode)
		if !ok || n.Method {
			return "", false
		}
		base, ok := readPath(n.Node)
		return base + "." + key.Value, ok
	}
	return "", false
}

// message is an expr error without the position and snippet expr adds:
// shown next to the condition, they would point into other text.
func message(err error) string {
	var fe *exprfile.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return firstLine(err.Error())
}
