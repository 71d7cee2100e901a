package rules_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/rules"
)

const sourcesSrc = `
sources:
  default:
    enabled: false
  aliyun_live_record:
    auth:
      notify_auth_keys:   # ${...} inside [ ] must be quoted: { and } are YAML flow syntax
        - ${KEY_NEW}
        - ${KEY_OLD:-}
      callback_host: hooks.example.com
      max_skew: 10m
    allow_cidrs: [203.0.113.0/24]
  jobs:
    auth: {bearer_tokens: ["${JOBS_TOKEN}"]}
  open:
rules:
  - name: r
    do: [{type: log}]
`

func TestSourcesLoad(t *testing.T) {
	vars := map[string]string{"KEY_NEW": "NEWkey0123456789", "JOBS_TOKEN": "jobs-token-0123456789"}
	set, err := rules.Load(writeRules(t, sourcesSrc), options(actionapi.Default(), vars))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	tests := []struct {
		source  string
		enabled bool
		method  string // "" for no credential
	}{
		{"aliyun_live_record", true, "aliyun_signature"},
		{"jobs", true, "bearer"},
		{"open", true, ""},
		{"unlisted", false, ""}, // the default entry
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			p, ok := set.Source(tt.source)
			if !ok {
				t.Fatal("no policy")
			}
			method := ""
			if p.Verifier != nil {
				method = p.Verifier.Method()
			}
			if p.Enabled != tt.enabled || method != tt.method {
				t.Errorf("enabled %v, auth %q; want %v, %q", p.Enabled, method, tt.enabled, tt.method)
			}
		})
	}
	p, _ := set.Source("aliyun_live_record")
	if !p.Allows(netip.MustParseAddr("203.0.113.5")) || p.Allows(netip.MustParseAddr("198.51.100.1")) {
		t.Errorf("allow_cidrs not applied: %v", p.AllowCIDRs)
	}
	// The empty ${KEY_OLD:-} is dropped; the new key verifies.
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := http.Header{}
	h.Set(auth.HeaderAliTimestamp, ts)
	h.Set(auth.HeaderAliSignature, auth.AliyunSignature("hooks.example.com", ts, "NEWkey0123456789"))
	if err := p.Verifier.Verify(h, nil, time.Now()); err != nil {
		t.Errorf("the configured key does not verify: %v", err)
	}
	for _, v := range vars {
		if got := set.Secrets.Redact("x " + v + " y"); got != "x **** y" {
			t.Errorf("the set does not know %q is secret: %q", v, got)
		}
	}
}

func TestSourcesAbsentMeansOpen(t *testing.T) {
	set, err := rules.Load(writeRules(t, "rules:\n  - name: r\n    do: [{type: log}]\n"), options(actionapi.Default(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	if p, ok := set.Source("aliyun_live_record"); ok || p != nil {
		t.Errorf("a rules file without sources: gives a policy %+v", p)
	}
}

// A failed load's diagnostics reach logs, `check` and /api/rules, and
// yaml.v3 quotes a mistyped value (whole when short, its first 7 bytes
// when long): values from ${...} must not show either way.
func TestDiagnosticsHideExpandedValues(t *testing.T) {
	tests := []struct {
		name, src, value string
		hidden           []string
	}{
		{"long value in a list setting", "sources:\n  jobs:\n    auth:\n      bearer_tokens: ${TOKEN}\n",
			"sk_live_0123456789abcdef", []string{"sk_live_0123456789abcdef", "sk_live"}},
		{"short value for a bool", "sources:\n  jobs:\n    enabled: ${FLAG}\n", "nOpe-x", []string{"nOpe-x"}},
		{"webhook URL for a log level", "actions:\n  a:\n    type: log\n    level: ${URL}\nrules: [{name: r, do: [{action: a}]}]\n",
			"https://hooks.slack.com/services/T0/B0/XYZSECRET", []string{"XYZSECRET"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"TOKEN": tt.value, "FLAG": tt.value, "URL": tt.value}
			_, err := rules.Load(writeRules(t, tt.src), options(actionapi.Default(), vars))
			if err == nil {
				t.Fatal("loaded")
			}
			for _, h := range tt.hidden {
				if strings.Contains(err.Error(), h) {
					t.Errorf("diagnostics show %q:\n%v", h, err)
				}
			}
			if !strings.Contains(err.Error(), "rules.yaml:") || !strings.Contains(err.Error(), "****") {
				t.Errorf("diagnostics lost their position:\n%v", err)
			}
		})
	}
}
