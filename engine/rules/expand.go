package rules

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/yamlconf"
)

// expand replaces ${VAR}, ${VAR:-default} and ${file:/path} in every scalar
// of the tree, in place. It works on parsed nodes rather than raw bytes so
// a value can never inject YAML or shift the positions of later errors.
// `$${` stands for a literal `${`.
func expand(file string, n *yaml.Node, getenv func(string) (string, bool), l *yamlconf.List, failed map[*yaml.Node]bool) {
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		v, err := expandString(n.Value, getenv)
		if err != nil {
			l.At(file, n, "%v", err)
			failed[n] = true
			return
		}
		n.Value = v
		if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = implicitTag(v)
		}
	}
	for _, c := range n.Content {
		expand(file, c, getenv, l, failed)
	}
}

// implicitTag lets a plain ${...} decode as if its value had been written
// in its place (7 is a number, true a boolean), except that a value YAML
// reads as null stays a string rather than erasing the setting.
func implicitTag(v string) string {
	var x any
	if err := (&yaml.Node{Kind: yaml.ScalarNode, Value: v}).Decode(&x); err != nil || x == nil {
		return "!!str"
	}
	return ""
}

func expandString(s string, getenv func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${ is an escaped ${
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		b.WriteString(s[:i])
		ref := s[i+2 : i+end]
		val, err := resolve(ref, getenv)
		if err != nil {
			return "", err
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

func resolve(ref string, getenv func(string) (string, bool)) (string, error) {
	if path, ok := strings.CutPrefix(ref, "file:"); ok {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("${file:%s}: %w", path, unwrapPathError(err))
		}
		// Mounted secrets usually end in a newline that is not part of the value.
		return strings.TrimRight(string(data), "\r\n"), nil
	}
	name, def, hasDefault := strings.Cut(ref, ":-")
	if !validVarName(name) {
		return "", fmt.Errorf("${%s}: not a valid variable name", ref)
	}
	if v, ok := getenv(name); ok && v != "" {
		return v, nil
	}
	if hasDefault {
		return def, nil
	}
	return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// unwrapPathError drops the path from *fs.PathError: the caller names it.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
