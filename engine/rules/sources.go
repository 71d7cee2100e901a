package rules

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/engine/yamlconf"
)

// defaultEntry names the `sources:` entry that applies to every source,
// of every kind, without an entry of its own.
const defaultEntry = "default"

// Source is one entry of `sources:`: how intake admits callbacks from it.
type Source struct {
	Name         string
	File         string
	Line         int
	Policy       *auth.Policy
	CallbackHost string        // aliyun_signature only
	CallbackURL  string        // vod_signature only; shown only redacted
	MaxSkew      time.Duration // signatures only
	Credentials  int           // keys, tokens or secrets accepted
	// DefaultAnswer is the on-demand source's default_answer: what it
	// answers when no answer rule holds; nil for "do not record".
	DefaultAnswer *event.Answer
}

// Source returns the policy for callbacks from name: its own entry, else
// the default entry. ok is false when neither exists, and then the source
// is open: enabled, with no credential asked.
func (s *Set) Source(name string) (p *auth.Policy, ok bool) {
	var def *auth.Policy
	for _, src := range s.Sources {
		switch src.Name {
		case name:
			return src.Policy, true
		case defaultEntry:
			def = src.Policy
		}
	}
	return def, def != nil
}

// loadGuard is the loader's state for `sources:` and for keeping values
// that came from ${...} out of a failed load's diagnostics.
type loadGuard struct {
	sources  map[string]*Source
	expanded secret.Redactor
}

// expand substitutes ${...} in doc, remembering each value it produced.
// Those are often secrets, and yaml.v3 quotes the offending value in its
// type errors (`cannot unmarshal !!str `https:/...` into int`), so a
// failed load's diagnostics, which reach logs, `check` and /api/rules,
// are scrubbed of them (see err). A successful load does not scrub them
// elsewhere: most are ordinary words that would mangle every log line.
func (l *loader) expand(file string, doc *yaml.Node) {
	marked := map[*yaml.Node]string{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
			marked[n] = n.Value
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	expand(file, doc, l.opts.Getenv, &l.diags, l.failed)
	for n, before := range marked {
		if n.Value == before {
			continue // not expanded: the reference itself, as written, is no secret
		}
		l.guard.expanded.Add(n.Value)
		if len(n.Value) > 10 { // the form yaml.v3 quotes long values in
			l.guard.expanded.Add("`" + n.Value[:7] + "...`")
		}
	}
}

// err is the load's outcome, with secrets scrubbed from every diagnostic.
func (l *loader) err() error {
	for i, d := range l.diags {
		l.diags[i].Msg = l.guard.expanded.Redact(l.set.Secrets.Redact(d.Msg))
	}
	return l.diags.Err()
}

type sourceYAML struct {
	Enabled       *bool       `yaml:"enabled"`
	Auth          yaml.Node   `yaml:"auth"`
	AllowCIDRs    []yaml.Node `yaml:"allow_cidrs"`
	DefaultAnswer yaml.Node   `yaml:"default_answer"`
}

type authYAML struct {
	NotifyAuthKey  secret.Secret   `yaml:"notify_auth_key"`
	NotifyAuthKeys []secret.Secret `yaml:"notify_auth_keys"`
	CallbackHost   string          `yaml:"callback_host"`
	VODPrivateKey  secret.Secret   `yaml:"vod_private_key"`
	VODPrivateKeys []secret.Secret `yaml:"vod_private_keys"`
	CallbackURL    string          `yaml:"callback_url"`
	BearerToken    secret.Secret   `yaml:"bearer_token"`
	BearerTokens   []secret.Secret `yaml:"bearer_tokens"`
	WebhookSecret  secret.Secret   `yaml:"webhook_secret"`
	WebhookSecrets []secret.Secret `yaml:"webhook_secrets"`
	MaxSkew        yaml.Node       `yaml:"max_skew"`
}

func (l *loader) sourcesNode(file string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.diags.At(file, n, "sources: want a mapping of source names to settings")
		return
	}
	if l.guard.sources == nil {
		l.guard.sources = map[string]*Source{}
	}
	yamlconf.ForEachKey(file, n, &l.diags, func(k, v *yaml.Node) {
		name := k.Value
		if !sourceapi.ValidName(name) {
			l.diags.At(file, k, "sources: %q is not a source name (1-64 letters, digits, '_', '.' or '-'), nor %s", name, defaultEntry)
			return
		}
		if prev, dup := l.guard.sources[name]; dup {
			l.diags.At(file, k, "source %q is already configured at %s:%d", name, prev.File, prev.Line)
			return
		}
		src := l.source(file, k, v)
		l.guard.sources[name] = src
		if src.Policy != nil {
			l.set.Sources = append(l.set.Sources, src)
		}
	})
}

// source decodes one entry; its Policy is nil if the entry is broken.
func (l *loader) source(file string, k, n *yaml.Node) *Source {
	src := &Source{Name: k.Value, File: file, Line: k.Line}
	var sy sourceYAML
	if err := yamlconf.Decode(file, n, &sy); err != nil {
		l.addErr(file, n, err)
		return src
	}
	ok := true
	p := &auth.Policy{Enabled: sy.Enabled == nil || *sy.Enabled}
	for i := range sy.AllowCIDRs {
		c := &sy.AllowCIDRs[i]
		pfx, err := auth.ParsePrefix(c.Value)
		if c.Kind != yaml.ScalarNode || err != nil {
			l.diags.At(file, c, "source %q: allow_cidrs: %s", src.Name, cidrError(err))
			ok = false
			continue
		}
		p.AllowCIDRs = append(p.AllowCIDRs, pfx)
	}
	if sy.Auth.Kind != 0 {
		p.Verifier = l.verifier(file, src, &sy.Auth)
		ok = ok && p.Verifier != nil
	}
	if sy.DefaultAnswer.Kind != 0 {
		if src.Name != event.SourceOnDemand {
			l.diags.At(file, &sy.DefaultAnswer, "source %q: default_answer applies only to %s, whose callbacks ask a question", src.Name, event.SourceOnDemand)
			ok = false
		} else if src.DefaultAnswer = l.answer(file, fmt.Sprintf("source %q: default_answer", src.Name), &sy.DefaultAnswer); src.DefaultAnswer == nil {
			ok = false
		}
	}
	if ok {
		src.Policy = p
	}
	return src
}

func cidrError(err error) string {
	if err == nil {
		return "want a CIDR such as 10.0.0.0/8 or an IP address"
	}
	return err.Error()
}

// verifier builds the credential check of an `auth:` mapping: exactly one
// scheme, each taking several keys so they can be rotated.
func (l *loader) verifier(file string, src *Source, n *yaml.Node) auth.Verifier {
	var ay authYAML
	if err := yamlconf.Decode(file, n, &ay); err != nil {
		l.addErr(file, n, err)
		return nil
	}
	type scheme struct {
		what string
		keys []secret.Secret
		at   *yaml.Node // where it is written; nil if it is not
	}
	var given []scheme
	for _, s := range []scheme{
		{"notify_auth_key", nonEmpty(ay.NotifyAuthKey, ay.NotifyAuthKeys), valueAt(n, "notify_auth_key", "notify_auth_keys")},
		{"vod_private_key", nonEmpty(ay.VODPrivateKey, ay.VODPrivateKeys), valueAt(n, "vod_private_key", "vod_private_keys")},
		{"bearer_token", nonEmpty(ay.BearerToken, ay.BearerTokens), valueAt(n, "bearer_token", "bearer_tokens")},
		{"webhook_secret", nonEmpty(ay.WebhookSecret, ay.WebhookSecrets), valueAt(n, "webhook_secret", "webhook_secrets")},
	} {
		for _, k := range s.keys {
			l.set.Secrets.Add(k.Reveal())
		}
		if s.at != nil {
			given = append(given, s)
		}
	}
	name := src.Name
	if len(given) != 1 {
		l.diags.At(file, n, "source %q: auth: want exactly one of notify_auth_key(s) (Aliyun Live signature), vod_private_key(s) (VOD signature), bearer_token(s) and webhook_secret(s) (Standard Webhooks)", name)
		return nil
	}
	s := given[0]
	ok := true
	if len(s.keys) == 0 {
		l.diags.At(file, s.at, "source %q: auth: %s: no value is set (every entry is empty)", name, s.what)
		ok = false
	}
	if h := valueAt(n, "callback_host"); h != nil && s.what != "notify_auth_key" {
		l.diags.At(file, h, "source %q: auth: callback_host applies only to notify_auth_key(s)", name)
		ok = false
	}
	if s.what == "notify_auth_key" && !validHost(ay.CallbackHost) {
		l.diags.At(file, valueAt(n, "callback_host", "notify_auth_key", "notify_auth_keys"),
			"source %q: auth: callback_host: %s", name, callbackHostWant(name))
		ok = false
	}
	if u := valueAt(n, "callback_url"); u != nil && s.what != "vod_private_key" {
		l.diags.At(file, u, "source %q: auth: callback_url applies only to vod_private_key(s)", name)
		ok = false
	}
	if s.what == "vod_private_key" {
		// VOD signs the URL exactly as configured, so it is kept as
		// written; it may carry a token of its own, so it is not quoted.
		u, valid := secret.ParseURL(ay.CallbackURL)
		if !valid {
			l.diags.At(file, valueAt(n, "callback_url", "vod_private_key", "vod_private_keys"),
				"source %q: auth: callback_url: want the callback URL configured in VOD's event notification, e.g. https://hooks.example.com/callbacks/vod", name)
			ok = false
		} else {
			for _, vs := range u.Query() {
				l.set.Secrets.Add(vs...)
			}
		}
	}
	skew := auth.DefaultMaxSkew
	if ay.MaxSkew.Kind != 0 {
		if s.what == "bearer_token" {
			l.diags.At(file, &ay.MaxSkew, "source %q: auth: max_skew applies only to signatures (notify_auth_key, vod_private_key, webhook_secret)", name)
			ok = false
		} else if err := ay.MaxSkew.Decode(&skew); err != nil || skew <= 0 {
			l.diags.At(file, &ay.MaxSkew, "source %q: auth: max_skew: want a positive duration such as 5m", name)
			ok = false
		}
	}
	var keys [][]byte
	if s.what == "webhook_secret" {
		for _, k := range s.keys {
			key, err := auth.WebhookKey(k.Reveal())
			if err != nil {
				l.diags.At(file, s.at, "source %q: auth: webhook secret: %v", name, err)
				ok = false
			}
			keys = append(keys, key)
		}
	}
	if !ok {
		return nil
	}
	src.Credentials = len(s.keys)
	switch s.what {
	case "notify_auth_key":
		src.CallbackHost, src.MaxSkew = ay.CallbackHost, skew
		return auth.NewAliyun(s.keys, ay.CallbackHost, skew)
	case "vod_private_key":
		src.CallbackURL, src.MaxSkew = ay.CallbackURL, skew
		return auth.NewVOD(s.keys, ay.CallbackURL, skew)
	case "bearer_token":
		return auth.NewBearer(s.keys)
	default:
		src.MaxSkew = skew
		return auth.NewStandardWebhooks(keys, skew)
	}
}

// callbackHostWant says what callback_host is for source name: Aliyun signs
// its stream callbacks over the ingest domain they are configured on, and
// every other callback over the host of its URL.
func callbackHostWant(name string) string {
	if name == event.SourceStream {
		return "want the ingest domain the stream callback is configured on, e.g. push.example.com"
	}
	return "want the host of the callback URL configured in Aliyun, e.g. hooks.example.com"
}

// nonEmpty merges the singular and plural forms of a setting, dropping
// empty values so `[${KEY_NEW}, ${KEY_OLD:-}]` works outside a rotation.
func nonEmpty(one secret.Secret, many []secret.Secret) []secret.Secret {
	var out []secret.Secret
	for _, s := range append([]secret.Secret{one}, many...) {
		if !s.IsZero() {
			out = append(out, s)
		}
	}
	return out
}

// valueAt returns the value node of the first of keys that mapping n has.
func valueAt(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if v, _ := splitKey(n, k); v != nil {
			return v
		}
	}
	return nil
}

// validHost accepts a host name or IP with an optional port, and nothing
// else: a scheme or a path means the whole URL was pasted.
func validHost(h string) bool {
	return h != "" && !strings.ContainsAny(h, "/?#@ \t")
}
