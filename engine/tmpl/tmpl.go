// Package tmpl parses text/template templates (with sprig's functions) at
// load time, so a broken template is a load error with its position rather
// than a failed delivery later.
package tmpl

import (
	"fmt"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/yamlconf"
)

// Extra names that templates may use beyond the event's fields.
var Extra = append([]string{
	"suppressed",  // deliveries a rule's throttle held back since the last one sent
	"delivery_id", // the stable idempotency key of this delivery
}, event.TemporalFields...)

// funcs is sprig's function map without the functions that read the
// daemon's environment: a template must not be a way to print its secrets.
var funcs = func() template.FuncMap {
	m := sprig.TxtFuncMap()
	delete(m, "env")
	delete(m, "expandenv")
	return m
}()

// MaxSize bounds a template's source: text/template's parser recurses once
// per nested action without a depth limit, and a deep enough nest
// overflows the stack, which no recover catches.
const MaxSize = 64 << 10

// Template is a parsed template with its source kept for display.
type Template struct {
	src string
	t   *template.Template
	// literal marks a template without actions: it renders as its
	// source, with no data needed.
	literal bool
}

// Parse parses src. A reference to a top-level name that no event has
// (`{{ .duraton }}`) is an error, like a misspelt field in a condition.
// Missing keys deeper down (`{{ .payload.error_info.code }}` on an event
// without error_info) render as "<no value>" rather than failing the
// delivery: an alert with a gap beats no alert.
func Parse(src string) (*Template, error) {
	if len(src) > MaxSize {
		return nil, fmt.Errorf("template: longer than %d KiB", MaxSize>>10)
	}
	t, err := template.New("").Funcs(funcs).Parse(src)
	if err != nil {
		return nil, fmt.Errorf("template: %s", strings.TrimPrefix(err.Error(), "template: :"))
	}
	if name := unknownField(t.Tree.Root); name != "" {
		return nil, fmt.Errorf("template: unknown field %q (events have %s)", name, strings.Join(known(), ", "))
	}
	// Comments leave no node, so a source that is not all text can still
	// parse to one text node or none: literal only if that is the source.
	root := t.Tree.Root.Nodes
	literal := src == "" || len(root) == 1 && root[0].Type() == parse.NodeText && string(root[0].(*parse.TextNode).Text) == src
	return &Template{src: src, t: t, literal: literal}, nil
}

// MustParse is Parse for templates written in code.
func MustParse(src string) *Template {
	t, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return t
}

// Source returns the template text as written.
func (t *Template) Source() string {
	if t == nil {
		return ""
	}
	return t.src
}

// IsZero reports whether no template was given.
func (t *Template) IsZero() bool { return t == nil || t.t == nil }

// Literal reports whether the template has no actions: it renders as
// written, whatever the data, so the caller need not build any.
func (t *Template) Literal() bool { return t.IsZero() || t.literal }

// Render executes the template against data (see event.TemplateData).
func (t *Template) Render(data map[string]any) (string, error) {
	if t.IsZero() {
		return "", nil
	}
	if t.literal {
		return t.src, nil
	}
	var b strings.Builder
	if err := t.t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render template: %s", strings.TrimPrefix(err.Error(), "template: :"))
	}
	return b.String(), nil
}

// UnmarshalYAML parses a scalar as a template, reporting errors at the
// scalar's position.
func (t *Template) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return yamlconf.PositionError(n, "want a template string")
	}
	p, err := Parse(n.Value)
	if err != nil {
		return yamlconf.PositionError(n, "%v", err)
	}
	*t = *p
	return nil
}

// MarshalText shows the template's source in JSON and logs.
func (t Template) MarshalText() ([]byte, error) { return []byte(t.src), nil }

func known() []string { return append(slices.Clone(event.Fields), Extra...) }

// unknownField finds a top-level field reference that is not a known name.
// Inside range and with the dot moves, so only names used at the top are
// checked; `$.name` is checked everywhere.
func unknownField(root parse.Node) string {
	names := known()
	var walk func(n parse.Node, top bool) string
	check := func(ident []string) string {
		if len(ident) > 0 && !slices.Contains(names, ident[0]) {
			return ident[0]
		}
		return ""
	}
	walk = func(n parse.Node, top bool) string {
		if n == nil {
			return ""
		}
		switch x := n.(type) {
		case *parse.ListNode:
			if x == nil {
				return ""
			}
			for _, c := range x.Nodes {
				if s := walk(c, top); s != "" {
					return s
				}
			}
		case *parse.ActionNode:
			return walk(x.Pipe, top)
		case *parse.PipeNode:
			if x == nil {
				return ""
			}
			for _, c := range x.Cmds {
				if s := walk(c, top); s != "" {
					return s
				}
			}
		case *parse.CommandNode:
			for _, a := range x.Args {
				if s := walk(a, top); s != "" {
					return s
				}
			}
		case *parse.FieldNode:
			if top {
				return check(x.Ident)
			}
		case *parse.VariableNode:
			if len(x.Ident) > 1 && x.Ident[0] == "$" {
				return check(x.Ident[1:])
			}
		case *parse.ChainNode:
			return walk(x.Node, top)
		case *parse.IfNode:
			return firstOf(walk(x.Pipe, top), walk(x.List, top), walk(x.ElseList, top))
		case *parse.RangeNode:
			return firstOf(walk(x.Pipe, top), walk(x.List, false), walk(x.ElseList, top))
		case *parse.WithNode:
			return firstOf(walk(x.Pipe, top), walk(x.List, false), walk(x.ElseList, top))
		}
		return ""
	}
	return walk(root, true)
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
