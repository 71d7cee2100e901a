package provider_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/plugins/provider"
)

func TestDiscovery(t *testing.T) {
	dir := t.TempDir()
	simplePlugin(t, dir, "alpha", "5s", "echo")
	addPlugin(t, dir, "beta", "name: beta\ndoc: do beta things\nprotocol: 1\ncommand: ./run.sh\ndelivery: {max_attempts: 2, backoff: 1s}\n")
	writeFile(t, filepath.Join(dir, "beta", "run.sh"), "#!/bin/sh\n", 0o755)
	simplePlugin(t, dir, ".hidden", "5s", "echo")                        // hidden: skipped
	writeFile(t, filepath.Join(dir, "README.md"), "# notes", 0o644)      // a file: skipped
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil { // no plugin.yaml: skipped
		t.Fatal(err)
	}

	reg, err := provider.Registry(provider.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	names := reg.Names()
	for _, want := range []string{"alpha", "beta", "log", "slack"} {
		if !slices.Contains(names, want) {
			t.Errorf("types %v lack %q", names, want)
		}
	}
	for _, skipped := range []string{".hidden", "empty", "README.md"} {
		if slices.Contains(names, skipped) {
			t.Errorf("types %v hold %q", names, skipped)
		}
	}
	beta, _ := reg.Lookup("beta")
	if beta.Doc != "do beta things (plugin)" {
		t.Errorf("beta's doc is %q", beta.Doc)
	}
	wantPolicy := actionapi.DeliveryPolicy{MaxAttempts: 2, Backoff: time.Second}.Over(actionapi.Alerting)
	if beta.Delivery != wantPolicy {
		t.Errorf("beta's delivery policy is %+v, want %+v", beta.Delivery, wantPolicy)
	}
	if alpha, _ := reg.Lookup("alpha"); alpha.Delivery != (actionapi.DeliveryPolicy{}) {
		t.Errorf("alpha's delivery policy is %+v, want the engine's default (zero)", alpha.Delivery)
	}
	if _, ok := actionapi.Default().Lookup("alpha"); ok {
		t.Error("the default registry learnt a plugin")
	}

	// Each call scans again: a removed plugin is gone.
	if err := os.RemoveAll(filepath.Join(dir, "alpha")); err != nil {
		t.Fatal(err)
	}
	provider := provider.Provider(provider.Options{Dir: dir})
	reg, err = provider()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Lookup("alpha"); ok {
		t.Error("a removed plugin is still a type after a rescan")
	}
}

func TestMissingFolder(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	reg, err := provider.Registry(provider.Options{Dir: missing, MissingOK: true})
	if err != nil || !slices.Equal(reg.Names(), actionapi.Default().Names()) {
		t.Errorf("missing folder with MissingOK: %v, %v; want the built-ins", reg, err)
	}
	if _, err := provider.Registry(provider.Options{Dir: missing}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing folder that was asked for: %v, want an error", err)
	}
}

func TestManifestErrors(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		noRun    bool // leave out ./run
		execRun  bool // make ./run not executable
	}{
		{name: "bad-yaml", manifest: `name: bad-yaml
protocol: 1
command: ./run
  oops: x # want: "mapping values are not allowed in this context"
`},
		{name: "unknown-key", manifest: `name: unknown-key
protocol: 1
command: ./run
comand: ./run # want: "unknown key \"comand\" (want one of command, delivery, doc, env, name, params, protocol, settings, timeout)"
`},
		{name: "no-command", manifest: `name: no-command # want: "command is required"
protocol: 1
`},
		{name: "name-mismatch", manifest: `name: other # want: "name \"other\" must be the plugin's folder name \"name-mismatch\""
protocol: 1
command: ./run
`},
		{name: "protocol-2", manifest: `name: protocol-2
protocol: 2 # want: "protocol 2 is not supported (this livehook speaks 1)"
command: ./run
`},
		{name: "not-built", noRun: true, manifest: `name: not-built
protocol: 1
command: ./run # want: "command \"./run\": no such file (is the plugin built?)"
`},
		{name: "not-executable", execRun: true, manifest: `name: not-executable
protocol: 1
command: [./run, --flag] # want: "command \"./run\": not an executable file"
`},
		{name: "not-in-path", manifest: `name: not-in-path
protocol: 1
command: livehook-no-such-program # want: "not found in PATH"
`},
		{name: "bad-env", manifest: `name: bad-env
protocol: 1
command: ./run
env: [PATH, "A-B"] # want: "env: \"A-B\" is not a variable name"
timeout: -1s # want: "timeout: want a positive duration"
`},
		{name: "field-key", manifest: `name: field-key
protocol: 1
command: ./run
params:
  - {name: token, requird: true} # want: "unknown key \"requird\" (want one of default, doc, enum, name, pattern, required, secret, template, type)"
`},
		{name: "fields", manifest: `name: fields
protocol: 1
command: ./run
settings:
  - {name: url, type: url} # want: "url: type \"url\": want one of string, int, number, bool, duration, list, map, object"
  - {name: count, type: int, secret: true} # want: "count: only a string can be secret"
  - {name: body, template: true} # want: "body: settings are not templates; declare it under params"
  - {name: timeout} # want: "name \"timeout\" is reserved"
  - {name: Bad} # want: "name \"Bad\": want lower-case letters"
  - {name: size, type: int, default: big} # want: "size: want an integer"
  - {name: host, pattern: "[a-"} # want: "host: pattern: error parsing regexp"
params:
  - {name: url} # want: "\"url\" is already declared at line 5"
  - {name: text, template: true, enum: [a, b]} # want: "text: enum needs a string that is not a template"
  - {name: mode, required: true, default: a} # want: "mode: a required field has no default"
  - {name: key, secret: true, template: true} # want: "key: a secret cannot be a template"
  - {name: tags, type: list, default: [1, [2]]} # want: "tags: want a string"
  - {name: when, type: duration, template: true} # want: "when: a duration cannot be a template"
  - {name: level, enum: [info, warn], default: loud} # want: "level: \"loud\": want one of info, warn"
  - {name: greeting, template: true, default: "{{ .nope }}"} # want: "greeting: template: unknown field \"nope\""
`},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		folder := addPlugin(t, dir, tc.name, tc.manifest)
		switch {
		case tc.noRun:
		case tc.execRun:
			writeFile(t, filepath.Join(folder, "run"), "#!/bin/sh\n", 0o644)
		default:
			writeFile(t, filepath.Join(folder, "run"), "#!/bin/sh\n", 0o755)
		}
	}
	_, err := provider.Registry(provider.Options{Dir: dir})
	if err == nil {
		t.Fatal("no error")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkWants(t, err, filepath.Join(dir, tc.name, "plugin.yaml"), tc.manifest)
		})
	}
}

func TestPluginMayNotShadowABuiltin(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"log", "slack"} {
		simplePlugin(t, dir, name, "5s", "echo")
	}
	simplePlugin(t, dir, "fine", "5s", "echo")
	_, err := provider.Registry(provider.Options{Dir: dir})
	for _, name := range []string{"log", "slack"} {
		src := "name: " + name + ` # want: "plugin \"` + name + `\" would shadow the built-in action type \"` + name + `\""`
		checkWants(t, err, filepath.Join(dir, name, "plugin.yaml"), src)
	}
	if strings.Contains(err.Error(), "fine") {
		t.Errorf("a good plugin is blamed: %v", err)
	}
}
