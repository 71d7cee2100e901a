// Package yamlconf decodes YAML strictly and reports every problem with its
// file:line:col, so a rules file can be fixed in one pass instead of one
// error at a time.
package yamlconf

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Diagnostic is one problem at one place.
type Diagnostic struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
	Msg  string `json:"message"`
}

func (d Diagnostic) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Msg)
}

// List collects diagnostics. The zero value is ready to use.
type List []Diagnostic

// At records a problem at node n of file.
func (l *List) At(file string, n *yaml.Node, format string, args ...any) {
	d := Diagnostic{File: file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		d.Line, d.Col = n.Line, n.Column
	}
	*l = append(*l, d)
}

// Add records diagnostics as they are.
func (l *List) Add(ds ...Diagnostic) { *l = append(*l, ds...) }

// AddErr records err: the diagnostics inside an *Error, a yaml error split at
// its "line N:" markers, or else the whole text at fallback's position.
func (l *List) AddErr(file string, fallback *yaml.Node, err error) {
	var e *Error
	switch {
	case err == nil:
	case errors.As(err, &e):
		l.Add(e.List...)
	default:
		var te *yaml.TypeError
		msgs := []string{err.Error()}
		if errors.As(err, &te) {
			msgs = te.Errors
		}
		for _, m := range msgs {
			l.Add(fromYAMLMessage(file, fallback, m))
		}
	}
}

// Err returns nil for an empty list, else an *Error with the diagnostics
// sorted by position.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	s := slices.Clone(l)
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c < 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return &Error{List: slices.Compact(s)}
}

// Error carries every diagnostic of a failed load.
type Error struct{ List List }

func (e *Error) Error() string {
	lines := make([]string, len(e.List))
	for i, d := range e.List {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Diagnostics extracts the diagnostics from an error returned by this package.
func Diagnostics(err error) List {
	var e *Error
	if errors.As(err, &e) {
		return e.List
	}
	return nil
}

// PositionError builds an error that yaml.v3 folds into its own error list,
// so leaf types (templates, durations) can report problems from inside
// UnmarshalYAML at their exact position.
func PositionError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...)),
	}}
}

var yamlPos = regexp.MustCompile(`^(?:yaml: )?line (\d+):(?: column (\d+):)? ?(.*)$`)

func fromYAMLMessage(file string, fallback *yaml.Node, msg string) Diagnostic {
	d := Diagnostic{File: file, Msg: msg}
	if fallback != nil {
		d.Line, d.Col = fallback.Line, fallback.Column
	}
	if m := yamlPos.FindStringSubmatch(msg); m != nil {
		d.Line, _ = strconv.Atoi(m[1])
		d.Col = 1
		if m[2] != "" {
			d.Col, _ = strconv.Atoi(m[2])
		}
		d.Msg = m[3]
	}
	d.Msg = strings.TrimPrefix(d.Msg, "yaml: ")
	return d
}

// ForEachKey calls fn for each key of mapping n and its value, in order.
// Parsing into a yaml.Node does not check duplicate keys, so each repeat
// is reported here instead of reaching fn; a node that is not a mapping is
// reported as such.
func ForEachKey(file string, n *yaml.Node, l *List, fn func(k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		l.At(file, n, "want a mapping")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if line, dup := seen[k.Value]; dup {
			l.At(file, k, "duplicate key %q (first at line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		fn(k, v)
	}
}

// Decode decodes n into v strictly: unknown keys anywhere in the tree are
// reported where they stand (yaml.v3 ignores KnownFields inside
// Node.Decode), and every type error keeps its own line.
func Decode(file string, n *yaml.Node, v any) error {
	var l List
	if n == nil {
		return nil
	}
	checkKeys(file, n, reflect.TypeOf(v), &l, map[visit]bool{})
	if err := n.Decode(v); err != nil {
		var yl List
		yl.AddErr(file, n, err)
		for _, d := range yl {
			if yamlDup.MatchString(d.Msg) && slices.ContainsFunc(l, func(c Diagnostic) bool {
				return c.Line == d.Line && strings.HasPrefix(c.Msg, "duplicate key")
			}) {
				continue // checkKeys reported it, with its column
			}
			l.Add(d)
		}
	}
	return l.Err()
}

var yamlDup = regexp.MustCompile(`^mapping key ".*" already defined at line \d+$`)

// visit is a node checked against a type. Aliases make the tree a graph,
// possibly cyclic or exponentially large, so each pair is checked once.
type visit struct {
	n *yaml.Node
	t reflect.Type
}

var (
	nodeType        = reflect.TypeOf(yaml.Node{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

func checkKeys(file string, n *yaml.Node, t reflect.Type, l *List, done map[visit]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if done[visit{n, t}] {
		return
	}
	done[visit{n, t}] = true
	if t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return // decoded by its owner, which checks its own keys
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		known := yamlFields(t)
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Tag == "!!merge" { // `<<: *base` or `<<: [*a, *b]`: the merged mappings must fit t too
				v := n.Content[i+1]
				if v.Kind == yaml.SequenceNode {
					for _, c := range v.Content {
						checkKeys(file, c, t, l, done)
					}
				} else {
					checkKeys(file, v, t, l, done)
				}
				continue
			}
			if prev, dup := seen[k.Value]; dup {
				l.At(file, k, "duplicate key %q (first at line %d)", k.Value, prev.Line)
				continue
			}
			seen[k.Value] = k
			ft, ok := known[k.Value]
			if !ok {
				l.At(file, k, "unknown key %q (want one of %s)", k.Value, names(known))
				continue
			}
			checkKeys(file, n.Content[i+1], ft, l, done)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 1; i < len(n.Content); i += 2 {
			checkKeys(file, n.Content[i], t.Elem(), l, done)
		}
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for _, c := range n.Content {
			checkKeys(file, c, t.Elem(), l, done)
		}
	}
}

// yamlFields maps each YAML key of struct t to its field type, following
// ",inline" fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range yamlFields(ft) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// FieldIndex returns the index path of the field that YAML key names in
// struct t, following ",inline" fields; nil if there is none.
func FieldIndex(t reflect.Type, key string) []int {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case !f.IsExported() || name == "-":
		case strings.Contains(opts, "inline"):
			ft := f.Type
			if ft.Kind() == reflect.Struct {
				if sub := FieldIndex(ft, key); sub != nil {
					return append([]int{i}, sub...)
				}
			}
		case name == key || (name == "" && strings.ToLower(f.Name) == key):
			return []int{i}
		}
	}
	return nil
}

func names(m map[string]reflect.Type) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
