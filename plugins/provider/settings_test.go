package provider_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/yamlconf"
	"github.com/livehook/livehook/plugins/internal/plugintest"
)

// kitPlugin adds a plugin named kit with a field of every type.
func kitPlugin(t *testing.T, dir string, mode ...string) {
	t.Helper()
	addPlugin(t, dir, "kit", fmt.Sprintf(`name: kit
protocol: 1
command: %s
timeout: 20s
env: [LIVEHOOK_TEST_ALLOWED, LIVEHOOK_TEST_NOT_SET]
settings:
  - {name: token, secret: true, required: true, pattern: '^[a-z0-9-]+$'}
  - {name: count, type: int, default: 3}
  - {name: ratio, type: number}
  - {name: verbose, type: bool}
  - {name: wait, type: duration}
  - {name: region, enum: [cn, intl]}
  - {name: labels, type: map}
params:
  - {name: message, template: true, required: true}
  - {name: tags, type: list, template: true}
  - {name: extra, type: object, template: true}
  - {name: level, default: info}
`, testCommand(t, mode...)))
}

func TestSettingsAndParamsAreCheckedAtLoad(t *testing.T) {
	dir := t.TempDir()
	kitPlugin(t, dir, "echo")
	src := `actions:
  full:
    type: kit
    token: t0p-s3cret
    count: many # want: "count: want an integer"
    ratio: [1] # want: "ratio: want a number"
    verbose: maybe # want: "verbose: want true or false"
    wait: 10 # want: "wait: want a duration such as 30s or 5m"
    region: mars # want: "region: \"mars\": want one of cn, intl"
    labels: [x] # want: "labels: want a mapping of strings to strings"
    colour: red # want: "unknown key \"colour\" (want one of count, extra, labels, level, message, ratio, region, tags, timeout, token, verbose, wait)"
    timeout: soon # want: "timeout: want a duration such as 30s or 5m"
  secretive:
    type: kit
    token: NOT A GOOD SECRET # want: "token: does not match ^[a-z0-9-]+$"
  tokenless:
    type: kit # want: "tokenless: token is required"
  good:
    type: kit
    token: t0p-s3cret
rules:
  - name: r
    do:
      - action: good
        with:
          message: "{{ .stream " # want: "message: template: 1: unclosed action"
          token: other # want: "\"token\" is a setting: set it on the action, not under with:"
          nope: 1 # want: "unknown key \"nope\" (want one of extra, level, message, tags)"
          tags: "{{ .app }}" # want: "tags: want a list of strings"
          extra: {a: ["{{ .nope }}"]} # want: "extra: template: unknown field \"nope\""
      - action: good # want: "good: message is required (set it on the action or in the step's with:)"
      - action: good
        with:
          message: ~ # want: "good: message is required"
      - type: kit
        token: inline-token
        with: {message: "{{ .stream }}", tags: ["{{ .app }}", live]}
`
	yamlOK(t, src)
	_, err := plugintest.Load(t, dir, nil, src, slog.New(slog.DiscardHandler))
	var file string
	for _, d := range yamlconf.Diagnostics(err) {
		file = d.File
	}
	checkWants(t, err, file, src)
	if strings.Contains(err.Error(), "NOT A GOOD SECRET") {
		t.Errorf("a secret is quoted in an error:\n%v", err)
	}
}

func TestGoodSettingsLoad(t *testing.T) {
	dir := t.TempDir()
	kitPlugin(t, dir, "echo")
	set, err := plugintest.Load(t, dir, nil, `actions:
  a:
    type: kit
    token: t0p-s3cret
    count: 7
    ratio: 0.5
    verbose: true
    wait: 1m30s
    region: cn
    labels: {team: live}
    message: "default {{ .stream }}"
    timeout: 3s
rules:
  - name: r
    do:
      - action: a
      - action: a
        with: {message: "{{ .app }}", level: warn, extra: {n: 1, list: [true, null, "{{ .domain }}"]}}
`, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Secrets.Redact("token t0p-s3cret"); got != "token ****" {
		t.Errorf("the set's redactor does not know the secret setting: %q", got)
	}
	if n := len(set.Rules[0].Steps); n != 2 {
		t.Errorf("%d steps, want 2", n)
	}
}
