package rules

import "gopkg.in/yaml.v3"

// mode reads a rule's mode: live (the default) runs its steps; shadow
// records what it matches or fires and runs nothing, so a new rule can be
// watched on real callbacks before it acts.
func (l *loader) mode(file string, r *Rule, n *yaml.Node) (shadow bool) {
	switch {
	case n.Kind == 0:
		return false
	case n.Kind == yaml.ScalarNode && n.Value == "live":
		return false
	case n.Kind == yaml.ScalarNode && n.Value == "shadow":
		return true
	}
	if n.Kind == yaml.ScalarNode {
		l.diags.At(file, n, "rule %q: mode: want live or shadow, not %q", r.Name, n.Value)
	} else {
		l.diags.At(file, n, "rule %q: mode: want live or shadow", r.Name)
	}
	return false
}
