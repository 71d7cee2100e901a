package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/engine/yamlconf"
)

// A decoded value is one of: string, secret.Secret, *tmpl.Template, int64,
// float64, bool, time.Duration, []any, map[string]any, nil (an object's
// null). Templates are rendered and durations turned into milliseconds
// only when a request is built.

// decode decodes n as f's value, recording every problem in l at its
// position; the result is nil if there was one. Secret values are added
// to secrets.
func (f *Field) decode(file string, n *yaml.Node, l *yamlconf.List, secrets *secret.Redactor) any {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	before := len(*l)
	var v any
	switch f.Type {
	case "string":
		v = f.decodeString(file, n, l, secrets)
	case "int", "number", "bool", "duration":
		v = decodeScalar(file, f.Name, f.Type, n, l)
	case "list":
		if n.Kind != yaml.SequenceNode {
			l.At(file, n, "%s: want a list of strings", f.Name)
			return nil
		}
		list := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			list = append(list, f.leaf(file, c, l))
		}
		v = list
	case "map":
		if n.Kind != yaml.MappingNode {
			l.At(file, n, "%s: want a mapping of strings to strings", f.Name)
			return nil
		}
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = f.leaf(file, n.Content[i+1], l)
		}
		v = m
	case "object":
		v = f.object(file, n, l)
	}
	if len(*l) > before {
		return nil
	}
	return v
}

func (f *Field) decodeString(file string, n *yaml.Node, l *yamlconf.List, secrets *secret.Redactor) any {
	if n.Kind != yaml.ScalarNode {
		l.At(file, n, "%s: want a string", f.Name)
		return nil
	}
	if f.Template {
		return parseTemplate(file, f.Name, n, l)
	}
	switch {
	case len(f.Enum) > 0 && !slices.Contains(f.Enum, n.Value):
		l.At(file, n, "%s: %q: want one of %s", f.Name, n.Value, strings.Join(f.Enum, ", "))
	case f.pattern != nil && !f.pattern.MatchString(n.Value) && f.Secret:
		l.At(file, n, "%s: does not match %s", f.Name, f.Pattern) // never quote a secret
	case f.pattern != nil && !f.pattern.MatchString(n.Value):
		l.At(file, n, "%s: %q does not match %s", f.Name, n.Value, f.Pattern)
	}
	if f.Secret {
		if secrets != nil {
			secrets.Add(n.Value)
		}
		return secret.New(n.Value)
	}
	return n.Value
}

// leaf decodes an item of a list or map: a string, or a template.
func (f *Field) leaf(file string, n *yaml.Node, l *yamlconf.List) any {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		l.At(file, n, "%s: want a string", f.Name)
		return nil
	}
	if f.Template {
		return parseTemplate(file, f.Name, n, l)
	}
	return n.Value
}

// object converts any YAML value to its JSON form; with Template, every
// string in it is a template.
func (f *Field) object(file string, n *yaml.Node, l *yamlconf.List) any {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				l.At(file, k, "%s: a key must be a string", f.Name)
				continue
			}
			m[k.Value] = f.object(file, n.Content[i+1], l)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			s = append(s, f.object(file, c, l))
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!str", "!!binary", "!!timestamp":
			if f.Template {
				return parseTemplate(file, f.Name, n, l)
			}
			return n.Value
		}
		var v any
		if err := n.Decode(&v); err != nil {
			l.At(file, n, "%s: %v", f.Name, err)
		}
		return v
	}
	l.At(file, n, "%s: want a YAML value", f.Name)
	return nil
}

func parseTemplate(file, name string, n *yaml.Node, l *yamlconf.List) any {
	t, err := tmpl.Parse(n.Value)
	if err != nil {
		l.At(file, n, "%s: %v", name, err)
		return nil
	}
	return t
}

// decodeScalar decodes an int, number, bool or duration.
func decodeScalar(file, name, kind string, n *yaml.Node, l *yamlconf.List) any {
	want := map[string]string{
		"int": "an integer", "number": "a number", "bool": "true or false",
		"duration": "a duration such as 30s or 5m",
	}[kind]
	if n.Kind != yaml.ScalarNode {
		l.At(file, n, "%s: want %s", name, want)
		return nil
	}
	var (
		v   any
		err error
	)
	switch kind {
	case "int":
		var i int64
		err = n.Decode(&i)
		v = i
	case "number":
		var x float64
		err = n.Decode(&x)
		v = x
	case "bool":
		var b bool
		err = n.Decode(&b)
		v = b
	case "duration":
		var d time.Duration
		d, err = time.ParseDuration(n.Value)
		if err == nil && d < 0 {
			err = errors.New("negative")
		}
		v = d
	}
	if err != nil {
		l.At(file, n, "%s: want %s", name, want)
		return nil
	}
	return v
}

// render turns decoded values into their JSON form against template data.
// Secrets stay secret.Secret, which marshals as "****": see reveal.
func render(v any, data map[string]any) (any, error) {
	switch x := v.(type) {
	case *tmpl.Template:
		return x.Render(data)
	case time.Duration:
		return x.Milliseconds(), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := render(e, data)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := render(e, data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	}
	return v, nil
}

// reveal returns rendered values with secrets in clear, for the request.
// Only settings and params of type string are secret, so only the top
// level is looked at.
func reveal(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if s, ok := v.(secret.Secret); ok {
			v = s.Reveal()
		}
		out[k] = v
	}
	return out
}

// marshal encodes rendered values for a request.
func marshal(m map[string]any) (json.RawMessage, error) {
	return json.Marshal(reveal(m))
}
