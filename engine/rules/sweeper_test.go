package rules_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/yamlconf"
	"github.com/livehook/livehook/internal/alicloud"
)

const sweeperSrc = `
sweeper:
  region: cn-shanghai
  endpoint: http://127.0.0.1:8081
  access_key_id: ${LIVE_AK}
  access_key_secret: ${LIVE_SK}
  interval: 10m
  look_back: 1h
  domains:
    aliyun_live_record: [Play.example.com, play-eu.example.com]
    aliyun_live_stream: [push.example.com]
rules:
  - name: late-file
    when: reconciled && kind == "file"
    do: [{type: log, with: {message: "late: {{ .reconciled }} {{ .uri }}"}}]
`

func TestSweeperLoads(t *testing.T) {
	p := writeRules(t, sweeperSrc)
	set, err := rules.Load(p, options(actionapi.Default(), map[string]string{"LIVE_AK": "LTAIsweeper", "LIVE_SK": "sweeper-secret-value"}))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer set.Retire()
	sw := set.Sweeper
	if sw == nil {
		t.Fatal("no sweeper")
	}
	want := map[string][]string{event.SourceRecord: {"play.example.com", "play-eu.example.com"}, event.SourceStream: {"push.example.com"}}
	if sw.Region != "cn-shanghai" || sw.Endpoint != "http://127.0.0.1:8081" || sw.Interval != 10*time.Minute || sw.LookBack != time.Hour ||
		sw.Key != (alicloud.AccessKey{ID: "LTAIsweeper", Secret: "sweeper-secret-value"}) || sw.File != p || sw.Line != 2 ||
		!maps.EqualFunc(sw.Domains, want, slices.Equal[[]string]) {
		t.Errorf("sweeper = %+v", sw)
	}
	if got := set.Secrets.Redact("sweeper-secret-value"); strings.Contains(got, "sweeper-secret-value") {
		t.Errorf("the secret is not redacted: %q", got)
	}
	var m rules.Matcher
	matched, errs := m.Match(set, &event.Event{Kind: event.KindFile, Reconciled: true})
	if len(errs) > 0 || len(matched) != 1 {
		t.Errorf("a reconciled file: matched %v, errors %v", matched, errs)
	}
	if matched, _ := m.Match(set, &event.Event{Kind: event.KindFile}); len(matched) != 0 {
		t.Errorf("a file received in time matched %v", matched)
	}
}

func TestSweeperDefaultsAndEnvironment(t *testing.T) {
	t.Setenv(alicloud.EnvAccessKeyID, "LTAIenv")
	t.Setenv(alicloud.EnvAccessKeySecret, "env-secret-value")
	set := loadString(t, "sweeper:\n  region: cn-beijing\n  domains: {aliyun_live_stream: [push.example.com]}\n")
	sw := set.Sweeper
	if sw.Interval != 0 || sw.LookBack != rules.DefaultLookBack || sw.Endpoint != "" || !sw.Key.FromEnv || sw.Key.ID != "LTAIenv" {
		t.Errorf("sweeper = %+v", sw)
	}
	if got := set.Secrets.Redact("env-secret-value"); strings.Contains(got, "env-secret-value") {
		t.Errorf("the environment's secret is not redacted: %q", got)
	}
	if lb := loadString(t, "sweeper:\n  region: cn-beijing\n  interval: 2h\n  domains: {aliyun_live_stream: [push.example.com]}\n").Sweeper.LookBack; lb != 2*time.Hour+rules.SweepSettle {
		t.Errorf("every 2h, the default look-back is %v: it must cover the interval and the settling time", lb)
	}
	if loadString(t, "rules: []\n").Sweeper != nil {
		t.Error("a set without sweeper: has one")
	}
}

func TestSweeperErrors(t *testing.T) {
	const keys = "  access_key_id: LTAIx\n  access_key_secret: secret-x\n"
	const domains = "  domains: {aliyun_live_record: [play.example.com]}\n"
	tests := []struct {
		name, src string
		line, col int
		want      string
	}{
		{"not a mapping", "sweeper: [a]\n", 1, 10, "sweeper: want a mapping with region and domains"},
		{"no region", "sweeper:\n" + keys + domains, 2, 3, "region is required"},
		{"bad region", "sweeper:\n  region: Shanghai\n" + keys + domains, 2, 11, `region "Shanghai"`},
		{"bad endpoint", "sweeper:\n  region: cn-shanghai\n  endpoint: https://live.aliyuncs.com/api\n" + keys + domains, 3, 13, "want scheme://host[:port]"},
		{"half a key", "sweeper:\n  region: cn-shanghai\n  access_key_id: LTAIx\n" + domains, 3, 18, "set both or neither"},
		{"unknown setting", "sweeper:\n  region: cn-shanghai\n  intervall: 1m\n" + keys + domains, 3, 3, `unknown key "intervall"`},
		{"zero interval", "sweeper:\n  region: cn-shanghai\n  interval: 0s\n" + keys + domains, 3, 13, "interval: want a positive duration"},
		{"an interval no look-back can cover", "sweeper:\n  region: cn-shanghai\n  interval: 168h\n" + keys + domains, 3, 13, "at most 167h58m0s"},
		{"look-back beyond Aliyun's", "sweeper:\n  region: cn-shanghai\n  look_back: 200h\n" + keys + domains, 3, 14, "at most 168h"},
		{"gaps between sweeps", "sweeper:\n  region: cn-shanghai\n  interval: 1h\n  look_back: 1h\n" + keys + domains, 4, 14, "leaves gaps between sweeps"},
		{"no domains", "sweeper:\n  region: cn-shanghai\n" + keys, 2, 3, "domains is required"},
		{"empty domains", "sweeper:\n  region: cn-shanghai\n" + keys + "  domains: {aliyun_live_record: []}\n", 5, 12, "list at least one domain"},
		{"a source without records", "sweeper:\n  region: cn-shanghai\n" + keys + "  domains: {aliyun_live_snapshot: [play.example.com]}\n", 5, 13, "Aliyun keeps records only of"},
		{"not a domain", "sweeper:\n  region: cn-shanghai\n" + keys + "  domains: {aliyun_live_record: [https://play.example.com]}\n", 5, 34, "is not a domain name"},
		{"a domain twice", "sweeper:\n  region: cn-shanghai\n" + keys + "  domains: {aliyun_live_record: [a.example.com, A.example.com]}\n", 5, 49, "listed twice"},
		{"domains not a list", "sweeper:\n  region: cn-shanghai\n" + keys + "  domains: {aliyun_live_record: play.example.com}\n", 5, 0, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(alicloud.EnvAccessKeyID, "")
			t.Setenv(alicloud.EnvAccessKeySecret, "")
			_, err := rules.Load(writeRules(t, tt.src), options(actionapi.Default(), nil))
			ds := yamlconf.Diagnostics(err)
			if len(ds) != 1 {
				t.Fatalf("got %v, want one diagnostic", err)
			}
			d := ds[0]
			if filepath.Base(d.File) != "rules.yaml" || d.Line != tt.line || (tt.col != 0 && d.Col != tt.col) || !strings.Contains(d.Msg, tt.want) {
				t.Errorf("diagnostic %s, want rules.yaml:%d:%d containing %q", d, tt.line, tt.col, tt.want)
			}
			if strings.Contains(d.Msg, "secret-x") {
				t.Errorf("the diagnostic shows the secret: %s", d)
			}
		})
	}
}

// TestSweeperOnceInADirectory: the files of a directory configure one
// sweeper, so it is clear which domains are swept.
func TestSweeperOnceInADirectory(t *testing.T) {
	dir := t.TempDir()
	const sw = "sweeper:\n  region: cn-shanghai\n  access_key_id: LTAIx\n  access_key_secret: secret-x\n  domains: {aliyun_live_record: [play.example.com]}\n"
	writeFileIn(t, dir, "a.yaml", sw)
	writeFileIn(t, dir, "b.yaml", "rules: []\n"+sw)
	_, err := rules.Load(dir, options(actionapi.Default(), nil))
	ds := yamlconf.Diagnostics(err)
	if len(ds) != 1 || filepath.Base(ds[0].File) != "b.yaml" || ds[0].Line != 2 || !strings.Contains(ds[0].Msg, "sweeper: already configured at ") ||
		!strings.Contains(ds[0].Msg, "a.yaml:1") {
		t.Errorf("got %v, want one diagnostic at b.yaml:2 naming a.yaml:1", err)
	}
}

func writeFileIn(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
