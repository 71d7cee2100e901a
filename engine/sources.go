package engine

import (
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/secret"
)

// Source gives intake the admission policy of a source from the current
// rules, so a reload applies to the next request.
func (e *Engine) Source(name string) (*auth.Policy, bool) { return e.Rules().Source(name) }

// SourceReport is one `sources:` entry for GET /api/rules: what is asked,
// never the keys themselves.
type SourceReport struct {
	Name         string   `json:"name"`
	Enabled      bool     `json:"enabled"`
	Auth         string   `json:"auth"` // none, aliyun_signature, vod_signature, bearer or standard_webhooks
	Credentials  int      `json:"credentials,omitempty"`
	CallbackHost string   `json:"callback_host,omitempty"`
	CallbackURL  string   `json:"callback_url,omitempty"` // query values redacted
	MaxSkew      string   `json:"max_skew,omitempty"`
	AllowCIDRs   []string `json:"allow_cidrs,omitempty"`
	File         string   `json:"file"`
	Line         int      `json:"line"`
}

func sourceReports(s *rules.Set) []SourceReport {
	out := []SourceReport{}
	for _, src := range s.Sources {
		r := SourceReport{Name: src.Name, Enabled: src.Policy.Enabled, Auth: "none", Credentials: src.Credentials,
			CallbackHost: src.CallbackHost, File: src.File, Line: src.Line}
		if v := src.Policy.Verifier; v != nil {
			r.Auth = v.Method()
		}
		if u, ok := secret.ParseURL(src.CallbackURL); ok {
			r.CallbackURL = secret.RedactedURL(u)
		}
		if src.MaxSkew > 0 {
			r.MaxSkew = src.MaxSkew.Round(time.Second).String()
		}
		for _, c := range src.Policy.AllowCIDRs {
			r.AllowCIDRs = append(r.AllowCIDRs, c.String())
		}
		out = append(out, r)
	}
	return out
}
