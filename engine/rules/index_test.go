package rules_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/rules"
)

// yamlRules writes one rule per condition, named r0, r1, ...; a condition
// of "-" leaves `when` out.
func yamlRules(conds ...string) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i, c := range conds {
		fmt.Fprintf(&b, "  - name: r%d\n    do: [{type: log}]\n", i)
		if c != "-" {
			q, _ := json.Marshal(c) // JSON strings are YAML double-quoted scalars
			fmt.Fprintf(&b, "    when: %s\n", q)
		}
	}
	return b.String()
}

// TestConstraints: what the analysis reads from a condition, and where it
// must stop reading because a conjunct before might fail or is not a
// boolean.
func TestConstraints(t *testing.T) {
	tests := []struct {
		when string
		want []string
	}{
		{`stream == "a"`, []string{`stream == "a"`}},
		{`"a" == stream`, []string{`stream == "a"`}},
		{`app in ["b", "a", "b"]`, []string{`app in ["a" "b"]`}},
		{`app in ["a", 1, nil, true]`, []string{`app == "a"`}}, // only a string can equal a string
		{`app in []`, []string{`app in []`}},
		{`stream startsWith "vip_"`, []string{`stream startsWith "vip_"`}},
		{`stream startsWith ""`, nil},
		{`push_args.callback_orderid startsWith "VIP"`, []string{`push_args.callback_orderid startsWith "VIP"`}},
		{`push_args["order"] == "x"`, []string{`push_args.order == "x"`}},
		{`kind == "file" && stream == "a" and app == "b"`, []string{`kind == "file"`, `stream == "a"`, `app == "b"`}},
		{`(kind == "file" && stream == "a") && app == "b"`, []string{`kind == "file"`, `stream == "a"`, `app == "b"`}},
		// Regular expressions: only an anchored, case-sensitive literal start.
		{`uri matches "^record/live/"`, []string{`uri startsWith "record/live/"`}},
		{`uri matches "\\Arecord"`, []string{`uri startsWith "record"`}},
		{`uri matches "^rec(ord)?/"`, []string{`uri startsWith "rec"`}},
		{`uri matches "^ab+c"`, []string{`uri startsWith "a"`}},
		{`uri matches "^\\Qa.b\\E"`, []string{`uri startsWith "a.b"`}},
		{`uri matches "^ab|^ac"`, []string{`uri startsWith "a"`}},
		{`uri matches "(^ab|\\Aabc)"`, []string{`uri startsWith "ab"`}},
		{`uri matches "(^ab|^cd)"`, nil},
		{`uri matches "^ab|ac"`, nil},
		{`uri matches "(^ab)d"`, nil}, // not read inside a group
		{`uri matches "^é"`, []string{`uri startsWith "é"`}},
		{`uri matches "^\\x{FFFD}a"`, nil}, // matches invalid UTF-8, which has no such prefix
		{`uri matches "record/"`, nil},
		{`uri matches "^a|b"`, nil},
		{`uri matches "(?i)^record"`, nil},
		{`uri matches "(?m)^record"`, nil},
		{`uri matches "^[ab]c"`, nil},
		{`uri matches "^"`, nil},
		// Not constraints, but a safe conjunct before one is fine.
		{`duration < 10 && stream == "a"`, []string{`stream == "a"`}},
		{`stop_time - start_time > 60 && 1 / duration > 0 && app == "a"`, []string{`app == "a"`}},
		{`not (app == "x") && !(uri endsWith ".m3u8") && stream == "a"`, []string{`stream == "a"`}},
		{`app not in ["x"] && stream != "b" && stream == "a"`, []string{`stream == "a"`}},
		{`(app == "x" || uri contains "y") && stream == "a"`, []string{`stream == "a"`}},
		{`payload.code == "x" && payload.n != nil && stream == "a"`, []string{`stream == "a"`}},
		{`stream == nil && stream == "a"`, []string{`stream == "a"`}},
		{`true && stream + "x" == "ax" && stream == "a"`, []string{`stream == "a"`}},
		// A conjunct that might fail ends the reading: the rule must be
		// evaluated to report its error.
		{`payload.x > 3 && stream == "a"`, nil},
		{`payload.x startsWith "a" && stream == "a"`, nil}, // fails on a number
		{`payload.x in ["a"] && stream == "a"`, nil},       // fails on a number
		{`payload.x matches "^a" && stream == "a"`, nil},
		{`payload.flag && stream == "a"`, nil}, // fails when not a boolean
		{`payload.a.b == "x" && stream == "a"`, nil},
		{`payload?.x == "x" && stream == "a"`, nil},
		{`len(stream) > 2 && stream == "a"`, nil},
		{`start_time % 7 == 0 && stream == "a"`, nil},
		{`now() > received_at && stream == "a"`, nil},
		{`(payload.x ?? "a") == "a" && stream == "a"`, nil},
		{`stream == "a" && payload.x > 3`, []string{`stream == "a"`}}, // after the constraint it does not matter
		// Only top-level conjuncts constrain.
		{`stream == "a" || app == "b"`, nil},
		{`not (stream == "a")`, nil},
		{`stream not in ["a"]`, nil},
		{`!(stream startsWith "a")`, nil},
		{`stream endsWith ".flv"`, nil},
		{`let s = stream; s == "a"`, nil},
		{`stream == "b"; stream == "a"`, nil},
		{`stream == "a" ? true : false`, nil},
		{`stream == app`, nil},
		{`payload.stream == "a"`, nil}, // any-typed: equal only to the string, but not a field
		{`stream == "a" + "b"`, nil},
		{`-`, nil},
	}
	conds := make([]string, len(tests))
	for i, tt := range tests {
		conds[i] = tt.when
	}
	set := loadString(t, yamlRules(conds...))
	for i, tt := range tests {
		if got := rules.Constraints(set.Rules[i]); !slices.Equal(got, tt.want) {
			t.Errorf("%s: constraints %q, want %q", tt.when, got, tt.want)
		}
	}
}

// The index places a rule by its constraint shared with the fewest other
// rules; without one, the rule is evaluated for every event.
func TestIndexPlacement(t *testing.T) {
	set := loadString(t, yamlRules(
		`kind == "file" && stream == "a"`,
		`kind == "file" && stream == "b"`,
		`kind == "file" && app in ["x", "y"]`,
		`kind == "file"`,
		`app == "x" && stream startsWith "vi"`,
		`stream startsWith "vip" && app == "z"`, // a tie: the first
		`payload.x > 3 && stream == "a"`,
		`-`,
		`stream in []`,
	))
	want := []string{
		`stream == "a"`, `stream == "b"`, `app in ["x" "y"]`, `kind == "file"`,
		`stream startsWith "vi"`, `stream startsWith "vip"`, "always", "always", "never",
	}
	for i, w := range want {
		if got := rules.IndexedOn(set, set.Rules[i].Name); got != w {
			t.Errorf("%s (%q): indexed on %s, want %s", set.Rules[i].Name, set.Rules[i].When, got, w)
		}
	}
}
