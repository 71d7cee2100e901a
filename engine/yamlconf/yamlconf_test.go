package yamlconf_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/yamlconf"
)

type retry struct {
	Attempts int           `yaml:"attempts"`
	Backoff  time.Duration `yaml:"backoff"`
}

type Common struct {
	Timeout time.Duration `yaml:"timeout"`
	Retry   retry         `yaml:"retry"`
}

type target struct {
	URL    string `yaml:"url"`
	Common `yaml:",inline"`
}

type config struct {
	Name    string            `yaml:"name"`
	Enabled bool              `yaml:"enabled"`
	Count   int               `yaml:"count"`
	Target  target            `yaml:"target"`
	Targets []target          `yaml:"targets"`
	ByName  map[string]target `yaml:"by_name"`
	Extra   map[string]any    `yaml:"extra"`
	Raw     yaml.Node         `yaml:"raw"`
	Ptr     *retry            `yaml:"ptr"`
	Skipped string            `yaml:"-"`
	Untag   string
}

// parse returns the document node of src.
func parse(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return n.Content[0]
}

// diag is a diagnostic as the tests state it.
type diag struct {
	line, col int
	msg       string // substring
}

func checkDiags(t *testing.T, err error, want []diag) {
	t.Helper()
	got := yamlconf.Diagnostics(err)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error:\n%v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		g := got[i]
		if g.File != "f.yaml" || g.Line != w.line || (w.col != 0 && g.Col != w.col) || !strings.Contains(g.Msg, w.msg) {
			t.Errorf("diagnostic %d = %s, want f.yaml:%d:%d containing %q", i, g, w.line, w.col, w.msg)
		}
	}
}

func TestDecodeUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []diag
	}{
		{name: "all known", src: "name: a\nenabled: true\ntarget:\n  url: u\n  timeout: 1s\n  retry: {attempts: 2}\nuntag: x\n"},
		{
			name: "top-level unknown key",
			src:  "name: a\nnmae: b\n",
			want: []diag{{2, 1, `unknown key "nmae" (want one of by_name, count, enabled, extra, name, ptr, raw, target, targets, untag)`}},
		},
		{
			name: "nested unknown key",
			src:  "target:\n  url: u\n  retry:\n    atempts: 3\n",
			want: []diag{{4, 5, `unknown key "atempts" (want one of attempts, backoff)`}},
		},
		{
			name: "inline fields are known at the parent's level",
			src:  "target:\n  url: u\n  timeout: 1s\n  timeot: 2s\n",
			want: []diag{{4, 3, `unknown key "timeot" (want one of retry, timeout, url)`}},
		},
		{
			name: "unknown key in a list element",
			src:  "targets:\n  - url: a\n  - url: b\n    ur1: c\n",
			want: []diag{{4, 5, `unknown key "ur1"`}},
		},
		{
			name: "unknown key in a map value",
			src:  "by_name:\n  x:\n    url: a\n    bogus: 1\n",
			want: []diag{{4, 5, `unknown key "bogus"`}},
		},
		{name: "free-form map and node keep any key", src: "extra: {a: 1, b: [2]}\nraw: {whatever: 1}\n"},
		{
			name: "through a pointer",
			src:  "ptr:\n  attempts: 1\n  tries: 2\n",
			want: []diag{{3, 3, `unknown key "tries"`}},
		},
		{
			name: "tag - and the untagged name",
			src:  "Skipped: x\nskipped: y\nuntag: z\n",
			want: []diag{{1, 1, `unknown key "Skipped"`}, {2, 1, `unknown key "skipped"`}},
		},
		{
			name: "every unknown key is reported, not just the first",
			src:  "a: 1\ntarget:\n  b: 2\n  retry:\n    c: 3\nd: 4\n",
			want: []diag{{1, 1, `"a"`}, {3, 3, `"b"`}, {5, 5, `"c"`}, {6, 1, `"d"`}},
		},
		{
			name: "unknown key under an alias is reported at the anchor",
			src:  "target: &t\n  url: u\n  bad: 1\ntargets: [*t]\n",
			want: []diag{{3, 3, `unknown key "bad"`}},
		},
		{
			// yaml.v3 merges `<<: *anchor` itself; the strict check must
			// not call the merge key unknown.
			name: "merge key",
			src:  "target: &t\n  url: u\n  timeout: 1s\ntargets:\n  - <<: *t\n    url: v\n",
		},
		{
			name: "unknown key inside a merged mapping",
			src:  "target: {url: u}\ntargets:\n  - <<: {url: v, nope: 1}\n",
			want: []diag{{3, 18, `unknown key "nope"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c config
			err := yamlconf.Decode("f.yaml", parse(t, tt.src), &c)
			checkDiags(t, err, tt.want)
		})
	}
}

func TestDecodeValues(t *testing.T) {
	var c config
	src := "name: a\ncount: 3\ntarget:\n  url: u\n  timeout: 2s\n  retry: {attempts: 4, backoff: 1m}\ntargets: [{url: x}, {url: y}]\n"
	if err := yamlconf.Decode("f.yaml", parse(t, src), &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "a" || c.Count != 3 || c.Target.URL != "u" || c.Target.Timeout != 2*time.Second ||
		c.Target.Retry != (retry{4, time.Minute}) || len(c.Targets) != 2 || c.Targets[1].URL != "y" {
		t.Errorf("decoded %+v", c)
	}
	if err := yamlconf.Decode("f.yaml", nil, &c); err != nil {
		t.Errorf("nil node: %v", err)
	}
}

func TestDecodeDuplicateKey(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []diag
	}{
		{
			// One problem, one diagnostic: not also yaml.v3's own
			// "mapping key already defined".
			name: "top level",
			src:  "name: a\ncount: 1\nname: b\n",
			want: []diag{{3, 1, `duplicate key "name" (first at line 1)`}},
		},
		{
			name: "nested",
			src:  "target:\n  url: a\n  url: b\n",
			want: []diag{{3, 3, `duplicate key "url" (first at line 2)`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c config
			checkDiags(t, yamlconf.Decode("f.yaml", parse(t, tt.src), &c), tt.want)
		})
	}
}

func TestForEachKey(t *testing.T) {
	tests := []struct {
		name string
		src  string
		keys string // the keys fn saw, in order
		want []diag
	}{
		{name: "in order", src: "b: 1\na: 2\n", keys: "b=1 a=2"},
		{name: "a repeat is reported, not passed on", src: "a: 1\nb: 2\na: 3\n", keys: "a=1 b=2",
			want: []diag{{3, 1, `duplicate key "a" (first at line 1)`}}},
		{name: "not a mapping", src: "[a, b]\n", want: []diag{{1, 1, "want a mapping"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l yamlconf.List
			var seen []string
			yamlconf.ForEachKey("f.yaml", parse(t, tt.src), &l, func(k, v *yaml.Node) {
				seen = append(seen, k.Value+"="+v.Value)
			})
			if got := strings.Join(seen, " "); got != tt.keys {
				t.Errorf("fn saw %q, want %q", got, tt.keys)
			}
			checkDiags(t, l.Err(), tt.want)
		})
	}
}

func TestDecodeTypeErrors(t *testing.T) {
	var c config
	src := "name: [1]\nenabled: maybe\ncount: many\ntarget:\n  timeout: soon\n  retry:\n    attempts: x\n"
	err := yamlconf.Decode("f.yaml", parse(t, src), &c)
	// yaml.v3 gives type errors a line but no column.
	checkDiags(t, err, []diag{
		{1, 1, "cannot unmarshal !!seq into string"},
		{2, 1, "cannot unmarshal !!str `maybe` into bool"},
		{3, 1, "cannot unmarshal !!str `many` into int"},
		{5, 1, "into time.Duration"},
		{7, 1, "cannot unmarshal !!str `x` into int"},
	})
}

func TestDecodeUnknownAndTypeErrorsTogether(t *testing.T) {
	var c config
	err := yamlconf.Decode("f.yaml", parse(t, "count: x\nbogus: 1\n"), &c)
	checkDiags(t, err, []diag{{1, 1, "into int"}, {2, 1, `unknown key "bogus"`}})
}

// pos reports a problem from inside UnmarshalYAML, as templates do.
type pos struct{ v string }

func (p *pos) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "bad" {
		return yamlconf.PositionError(n, "bad value %q", n.Value)
	}
	p.v = n.Value
	return nil
}

func TestPositionErrorRoundTrip(t *testing.T) {
	type holder struct {
		A pos   `yaml:"a"`
		B []pos `yaml:"b"`
		N int   `yaml:"n"`
	}
	src := "a: good\nb:\n  - ok\n  -   bad\nn: x\n"
	var h holder
	err := yamlconf.Decode("f.yaml", parse(t, src), &h)
	checkDiags(t, err, []diag{{4, 7, `bad value "bad"`}, {5, 1, "into int"}})
	if h.A.v != "good" {
		t.Errorf("a = %q; the good values still decode", h.A.v)
	}
	// A type with its own UnmarshalYAML checks its own keys.
	type withMap struct {
		P pos `yaml:"p"`
	}
	var w withMap
	err = yamlconf.Decode("f.yaml", parse(t, "p: {x: 1}\n"), &w)
	if err != nil {
		t.Errorf("keys under an Unmarshaler were checked: %v", err)
	}
}

func TestListErr(t *testing.T) {
	var l yamlconf.List
	if l.Err() != nil {
		t.Fatal("empty list must give a nil error")
	}
	l.Add(
		yamlconf.Diagnostic{File: "b.yaml", Line: 1, Col: 1, Msg: "b1"},
		yamlconf.Diagnostic{File: "a.yaml", Line: 10, Col: 2, Msg: "a10.2"},
		yamlconf.Diagnostic{File: "a.yaml", Line: 2, Col: 9, Msg: "a2.9"},
		yamlconf.Diagnostic{File: "a.yaml", Line: 10, Col: 1, Msg: "a10.1"},
		yamlconf.Diagnostic{File: "a.yaml", Line: 2, Col: 9, Msg: "a2.9"}, // exact duplicate
		yamlconf.Diagnostic{File: "a.yaml", Line: 2, Col: 9, Msg: "a2.9 second"},
	)
	err := l.Err()
	var msgs []string
	for _, d := range yamlconf.Diagnostics(err) {
		msgs = append(msgs, d.Msg)
	}
	want := []string{"a2.9", "a2.9 second", "a10.1", "a10.2", "b1"}
	if !slices.Equal(msgs, want) {
		t.Errorf("order = %q, want %q", msgs, want)
	}
	if l[0].Msg != "b1" {
		t.Error("Err reordered the list it was called on")
	}
	wantText := "a.yaml:2:9: a2.9\na.yaml:2:9: a2.9 second\na.yaml:10:1: a10.1\na.yaml:10:2: a10.2\nb.yaml:1:1: b1"
	if err.Error() != wantText {
		t.Errorf("Error() =\n%s\nwant\n%s", err, wantText)
	}
}

func TestListAtAndAddErr(t *testing.T) {
	n := parse(t, "a:\n  b: c\n").Content[1] // the mapping at 2:3
	tests := []struct {
		name string
		add  func(l *yamlconf.List)
		want yamlconf.Diagnostic
	}{
		{"At a node", func(l *yamlconf.List) { l.At("f.yaml", n, "x %d", 1) }, yamlconf.Diagnostic{File: "f.yaml", Line: 2, Col: 3, Msg: "x 1"}},
		{"At no node", func(l *yamlconf.List) { l.At("f.yaml", nil, "x") }, yamlconf.Diagnostic{File: "f.yaml", Msg: "x"}},
		{"plain error at the fallback", func(l *yamlconf.List) { l.AddErr("f.yaml", n, errors.New("boom")) }, yamlconf.Diagnostic{File: "f.yaml", Line: 2, Col: 3, Msg: "boom"}},
		{"yaml syntax error keeps its line", func(l *yamlconf.List) { l.AddErr("f.yaml", n, errors.New("yaml: line 7: did not find expected key")) }, yamlconf.Diagnostic{File: "f.yaml", Line: 7, Col: 1, Msg: "did not find expected key"}},
		{"line and column", func(l *yamlconf.List) { l.AddErr("f.yaml", nil, errors.New("line 3: column 8: nope")) }, yamlconf.Diagnostic{File: "f.yaml", Line: 3, Col: 8, Msg: "nope"}},
		{"an *Error passes through", func(l *yamlconf.List) {
			l.AddErr("other.yaml", n, &yamlconf.Error{List: yamlconf.List{{File: "g.yaml", Line: 4, Col: 5, Msg: "inner"}}})
		}, yamlconf.Diagnostic{File: "g.yaml", Line: 4, Col: 5, Msg: "inner"}},
		{"a wrapped *Error passes through", func(l *yamlconf.List) {
			l.AddErr("other.yaml", n, fmt.Errorf("ctx: %w", &yamlconf.Error{List: yamlconf.List{{File: "g.yaml", Line: 4, Col: 5, Msg: "inner"}}}))
		}, yamlconf.Diagnostic{File: "g.yaml", Line: 4, Col: 5, Msg: "inner"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l yamlconf.List
			tt.add(&l)
			if len(l) != 1 || l[0] != tt.want {
				t.Errorf("got %v, want [%v]", l, tt.want)
			}
		})
	}
	var l yamlconf.List
	l.AddErr("f.yaml", n, nil)
	if len(l) != 0 {
		t.Errorf("nil error added %v", l)
	}
}

func TestDiagnosticsOfOtherErrors(t *testing.T) {
	if d := yamlconf.Diagnostics(errors.New("plain")); d != nil {
		t.Errorf("Diagnostics(plain) = %v", d)
	}
	if d := yamlconf.Diagnostics(nil); d != nil {
		t.Errorf("Diagnostics(nil) = %v", d)
	}
}

func TestFieldIndex(t *testing.T) {
	type Inner struct {
		Deep string `yaml:"deep"`
	}
	type Mid struct {
		Inner `yaml:",inline"`
		Mid   string `yaml:"mid"`
	}
	type s struct {
		A       string `yaml:"a"`
		Opt     string `yaml:"opt,omitempty"`
		Mid     `yaml:",inline"`
		Plain   string
		Dash    string `yaml:"-"`
		private string `yaml:"private"`
	}
	typ := reflect.TypeOf(s{})
	tests := []struct {
		key  string
		want []int
	}{
		{"a", []int{0}},
		{"opt", []int{1}},
		{"mid", []int{2, 1}},
		{"deep", []int{2, 0, 0}},
		{"plain", []int{3}},
		{"Plain", nil},
		{"-", nil},
		{"Dash", nil},
		{"dash", nil},
		{"private", nil},
		{"nope", nil},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got := yamlconf.FieldIndex(typ, tt.key)
			if !slices.Equal(got, tt.want) {
				t.Errorf("FieldIndex(%q) = %v, want %v", tt.key, got, tt.want)
			}
			if got != nil {
				_ = reflect.New(typ).Elem().FieldByIndex(got) // the path must be usable
			}
		})
	}
	_ = s{}.private
}

// node is a type that refers to itself, as a tree-shaped setting would.
type node struct {
	Name string `yaml:"name"`
	Next *node  `yaml:"next"`
	Kids []node `yaml:"kids"`
}

// Aliases make graphs out of YAML: a mapping may contain an alias of
// itself, or a few anchors may expand to billions of nodes. Decoding such a
// document must end with an error, not overflow the stack (which kills the
// whole daemon) or run for hours. Each case runs in a child process so a
// crash fails this test instead of the whole package.
func TestDecodeAliasGraphs(t *testing.T) {
	bomb := func() string {
		var b strings.Builder
		b.WriteString("kids:\n  - &a0 {name: x}\n")
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, "  - &a%d {kids: [", i)
			for j := range 10 {
				if j > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "*a%d", i-1)
			}
			b.WriteString("]}\n")
		}
		return b.String()
	}()
	tests := []struct{ name, src string }{
		{"mapping containing itself", "&a {name: x, next: *a}\n"},
		{"mapping containing itself in a list", "&a {name: x, kids: [*a]}\n"},
		{"exponential aliases", bomb},
	}
	if name := os.Getenv("YAMLCONF_ALIAS_CASE"); name != "" {
		for _, tt := range tests {
			if tt.name == name {
				var v node
				err := yamlconf.Decode("f.yaml", parse(t, tt.src), &v)
				if err == nil {
					t.Fatal("no error for a self-referential or excessive document")
				}
				return
			}
		}
		t.Fatalf("no case %q", name)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDecodeAliasGraphs$", "-test.count=1")
			cmd.Env = append(os.Environ(), "YAMLCONF_ALIAS_CASE="+tt.name)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("decode did not finish within 30s")
			}
			if err != nil {
				if len(out) > 2000 {
					out = out[:2000]
				}
				t.Fatalf("child failed: %v\n%s", err, out)
			}
		})
	}
}
