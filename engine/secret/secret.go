// Package secret holds values that must never be printed: webhook URLs with
// tokens, signing keys, AccessKeys. A Secret formats, logs and marshals as
// "****"; only Reveal gives the value, so every use of the real value is
// explicit and easy to audit. A Redactor scrubs known values from text,
// and a URLHider a URL that is a credential, such as a chat robot's.
package secret

import (
	"log/slog"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Redacted is what a secret prints as everywhere.
const Redacted = "****"

// Secret is a string that hides itself from fmt, slog, JSON and YAML. The
// value sits behind a pointer because fmt prints unexported fields without
// calling String: a struct holding a Secret in one would show the value,
// where a pointer shows only an address.
type Secret struct{ value *string }

// New wraps v.
func New(v string) Secret { return Secret{value: &v} }

// Reveal returns the real value, for the one place that sends it.
func (s Secret) Reveal() string {
	if s.value == nil {
		return ""
	}
	return *s.value
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

func (s Secret) String() string               { return s.redacted() }
func (s Secret) GoString() string             { return s.redacted() }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(s.redacted()) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }

// MarshalYAML keeps secrets out of any YAML dump of a configuration.
func (s Secret) MarshalYAML() (any, error) { return s.redacted(), nil }

// UnmarshalYAML reads a secret from a scalar.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	s.value = &v
	return nil
}

func (s Secret) redacted() string {
	if s.IsZero() {
		return ""
	}
	return Redacted
}

// Redactor replaces every known secret value in text with Redacted. Errors
// from net/http quote whole URLs, so text that may carry a secret passes
// through a Redactor before it reaches a log, a CLI or an API.
type Redactor struct {
	values []string
	r      *strings.Replacer
}

// Add records values as secret. Values shorter than 4 bytes are ignored:
// replacing them would mangle ordinary text and they protect nothing.
func (r *Redactor) Add(values ...string) {
	for _, v := range values {
		if len(v) >= 4 && !slices.Contains(r.values, v) {
			r.values = append(r.values, v)
		}
	}
	// Longest first, so a secret that contains another is replaced whole.
	vs := slices.Clone(r.values)
	slices.SortFunc(vs, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(vs))
	for _, v := range vs {
		pairs = append(pairs, v, Redacted)
	}
	r.r = strings.NewReplacer(pairs...)
}

// Merge adds every value that o knows.
func (r *Redactor) Merge(o *Redactor) {
	if o != nil {
		r.Add(o.values...)
	}
}

// Redact returns s with every known secret replaced. It is safe for
// concurrent use once the Redactor is no longer being added to.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}
