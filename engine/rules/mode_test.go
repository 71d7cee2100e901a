package rules_test

import (
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/rules"
)

func TestModeShadow(t *testing.T) {
	set := loadString(t, `rules:
  - name: watched
    mode: shadow
    when: event == "record_error"
    do: [{type: log}]
  - name: live
    mode: live
    when: event == "record_error"
    do: [{type: log}]
  - name: watched-over-time
    mode: shadow
    when: event == "record_started"
    expect: {match: kind == "file", within: 30m}
    do: [{type: log}]
  - name: default
    do: [{type: log}]
`)
	for name, want := range map[string]bool{"watched": true, "live": false, "watched-over-time": true, "default": false} {
		if got := set.Rule(name).Shadow; got != want {
			t.Errorf("rule %s: Shadow = %v, want %v", name, got, want)
		}
	}
	path := writeRules(t, `rules:
  - name: typo
    mode: shadw
    do: [{type: log}]
  - name: not-a-word
    mode: [shadow]
    do: [{type: log}]
`)
	_, err := rules.Load(path, options(actionapi.Default(), nil))
	for _, want := range []string{
		path + `:3:11: rule "typo": mode: want live or shadow, not "shadw"`,
		path + `:6:11: rule "not-a-word": mode: want live or shadow`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("load error %v, want %q", err, want)
		}
	}
}
