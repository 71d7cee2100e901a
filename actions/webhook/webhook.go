// Package webhook is the `webhook` action: an HTTP request to any service,
// signed per Standard Webhooks (standardwebhooks.com) when a secret is set.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
)

func init() {
	actionapi.Register(actionapi.Type{
		Name: "webhook",
		Doc:  "send an HTTP request to any service, signed per Standard Webhooks when a secret is set",
		Open: open,
		// A webhook's receiver is a service made to take requests at once,
		// and each delivery holds its slot for its request and the flush
		// that records it: at 16, a steady stream of callbacks outran
		// forwarding, at 64 it was forwarded as it was accepted, and 128
		// did worse (docs/design.md, Forwarding: delivery concurrency and
		// the ceiling). The transport all actions share keeps enough idle
		// connections per host for several instances' slots.
		Delivery: func() actionapi.DeliveryPolicy { p := actionapi.Alerting; p.Concurrency = 64; return p }(),
	})
}

// Config is a webhook instance's settings.
type Config struct {
	// URL is required. Only its path and query may hold template actions.
	URL endpoint `yaml:"url"`
	// Secret signs every delivery (webhook-timestamp, webhook-signature);
	// empty means unsigned, as if it were not set.
	Secret                secret.Secret `yaml:"secret"`
	actionapi.HTTPOptions `yaml:",inline"`
	Params                `yaml:",inline"`
}

// Params can be set on the instance and overridden per step with `with:`.
type Params struct {
	Method string `yaml:"method"` // GET, POST (default), PUT, PATCH or DELETE
	// Headers are templates, merged by name over the instance's; a header
	// that renders empty is not sent.
	Headers map[string]*tmpl.Template `yaml:"headers"`
	Body    *tmpl.Template            `yaml:"body"` // default: the event as JSON
}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// reserved headers are set by livehook itself.
var reserved = []string{"Host", "Content-Length", "Transfer-Encoding", auth.HeaderWebhookID, auth.HeaderWebhookTimestamp, auth.HeaderWebhookSignature}

type instance struct {
	name     string
	url      endpoint
	key      []byte // HMAC key; nil when deliveries are not signed
	client   *retryablehttp.Client
	defaults Params
	secrets  *secret.Redactor
	now      func() time.Time
}

func open(s actionapi.Settings) (actionapi.Instance, error) {
	if s.Secrets == nil {
		s.Secrets = &secret.Redactor{}
	}
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	if c.URL.base == nil {
		return nil, fmt.Errorf("%s: url is required", s.Name)
	}
	// The URL may carry credentials (?token=...): scrub them everywhere.
	s.Secrets.Add(c.URL.literalSecrets()...)
	defaults, err := Params{Method: http.MethodPost}.override(c.Params)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	i := &instance{
		name:     s.Name,
		url:      c.URL,
		client:   s.Deps.HTTP.Client(c.HTTPOptions),
		defaults: defaults,
		secrets:  s.Secrets,
		now:      s.Deps.Now,
	}
	if !c.Secret.IsZero() {
		if i.key, err = auth.WebhookKey(c.Secret.Reveal()); err != nil {
			return nil, fmt.Errorf("%s: secret: %w", s.Name, err)
		}
		// Each retry is a new attempt with its own timestamp and signature.
		i.client.PrepareRetry = i.resign
	}
	return i, nil
}

// override returns p with the values set in w, validated.
func (p Params) override(w Params) (Params, error) {
	if w.Method != "" {
		p.Method = strings.ToUpper(w.Method)
	}
	if w.Body != nil {
		p.Body = w.Body
	}
	if w.Headers != nil {
		h := maps.Clone(p.Headers)
		if h == nil {
			h = map[string]*tmpl.Template{}
		}
		seen := map[string]string{}
		for name, t := range w.Headers {
			if !validHeaderName(name) {
				return Params{}, fmt.Errorf("headers: %q is not a valid header name", name)
			}
			c := http.CanonicalHeaderKey(name)
			if slices.Contains(reserved, c) {
				return Params{}, fmt.Errorf("headers: %s is set by livehook", c)
			}
			if prev, dup := seen[c]; dup {
				return Params{}, fmt.Errorf("headers: %q and %q are the same header", prev, name)
			}
			seen[c] = name
			h[c] = t
		}
		p.Headers = h
	}
	if !slices.Contains(methods, p.Method) {
		return Params{}, fmt.Errorf("method %q: want one of %s", p.Method, strings.Join(methods, ", "))
	}
	if p.Method == http.MethodGet && p.Body != nil {
		return Params{}, errors.New("body: a GET request carries no body")
	}
	return p, nil
}

func (i *instance) Step(with actionapi.Params) (actionapi.Step, error) {
	// Decode into a zero Params so that `headers:` merges by name over the
	// instance's headers instead of replacing them all.
	var w Params
	if err := with.Decode(&w); err != nil {
		return nil, err
	}
	p, err := i.defaults.override(w)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", i.name, err)
	}
	needsData := !i.url.rest.Literal() || !p.Body.Literal()
	for _, t := range p.Headers {
		needsData = needsData || !t.Literal()
	}
	return &step{i: i, params: p, needsData: needsData}, nil
}

func (i *instance) Close() error { return nil }

type step struct {
	i      *instance
	params Params
	// needsData is false when no template of the step uses the event:
	// then Plan skips building the data templates render from.
	needsData bool
}

// delivery is a rendered request, the Plan's Payload.
type delivery struct {
	method string
	url    string // the real URL
	target string // the URL as shown, credentials redacted
	header http.Header
	body   []byte
	id     string // webhook-id
}

func (s *step) Plan(in actionapi.Input) (actionapi.Plan, error) {
	var data map[string]any
	if s.needsData {
		data = in.Data()
	}
	u, err := s.i.url.render(data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	var body []byte
	switch {
	case s.params.Body != nil:
		b, err := s.params.Body.Render(data)
		if err != nil {
			return actionapi.Plan{}, fmt.Errorf("body: %w", err)
		}
		body = []byte(b)
	case s.params.Method != http.MethodGet:
		if body, err = event.AppendJSON(nil, in.Event); err != nil {
			return actionapi.Plan{}, fmt.Errorf("body: %w", err)
		}
	}
	header := http.Header{}
	for name, t := range s.params.Headers {
		v, err := t.Render(data)
		if err != nil {
			return actionapi.Plan{}, fmt.Errorf("header %s: %w", name, err)
		}
		if v == "" {
			continue
		}
		if !validHeaderValue(v) {
			return actionapi.Plan{}, fmt.Errorf("header %s: the rendered value holds a control character such as a line break", name)
		}
		header.Set(name, v)
	}
	if len(body) > 0 && header.Get("Content-Type") == "" {
		header.Set("Content-Type", "application/json")
	}
	id := in.DeliveryID
	if id == "" {
		id = in.Event.ID + ":" + in.Rule
	}
	header.Set(auth.HeaderWebhookID, id)

	d := &delivery{
		method: s.params.Method,
		url:    u.String(),
		target: s.i.secrets.Redact(secret.RedactedURL(u)),
		header: header,
		body:   body,
		id:     id,
	}
	shown := map[string]string{}
	for name := range header {
		shown[name] = s.i.showHeader(name, header.Get(name))
	}
	return actionapi.Plan{
		Method:  d.method,
		Target:  d.target,
		Body:    s.i.showBody(body),
		Info:    map[string]any{"headers": shown, "signed": s.i.key != nil},
		Payload: d,
	}, nil
}

func (s *step) Do(ctx context.Context, p actionapi.Plan) actionapi.Result {
	d, ok := p.Payload.(*delivery)
	if !ok {
		return actionapi.Failed(actionapi.Permanent, errors.New("webhook: plan was not made by this step"))
	}
	var body any // untyped nil: no body at all, not an empty one
	if len(d.body) > 0 {
		body = d.body
	}
	req, err := retryablehttp.NewRequestWithContext(context.WithValue(ctx, deliveryKey{}, d), d.method, d.url, body)
	if err != nil {
		return s.i.result(actionapi.Failed(actionapi.Permanent, hideURL(err, d)))
	}
	req.Header = d.header.Clone()
	s.i.sign(req.Header, d)
	resp, err := s.i.client.Do(req)
	if err != nil && resp != nil {
		resp.Body.Close() // the client hands back both on some failures
	}
	r, _ := actionapi.HTTPResult(resp, hideURL(err, d))
	return s.i.result(r)
}

type deliveryKey struct{}

// sign sets the signature headers for one attempt.
func (i *instance) sign(h http.Header, d *delivery) {
	if i.key == nil {
		return
	}
	ts := strconv.FormatInt(i.now().Unix(), 10)
	h.Set(auth.HeaderWebhookTimestamp, ts)
	h.Set(auth.HeaderWebhookSignature, auth.WebhookSignature(i.key, d.id, ts, d.body))
}

// resign re-signs a retry with a fresh timestamp, so a delivery retried
// after long backoffs still passes the receiver's timestamp tolerance. The
// webhook-id stays the same: it is the receiver's idempotency key.
func (i *instance) resign(r *http.Request) error {
	d, ok := r.Context().Value(deliveryKey{}).(*delivery)
	if !ok {
		return errors.New("webhook: retry without its delivery")
	}
	// The previous attempt's request shares the map: do not write to it.
	r.Header = r.Header.Clone()
	i.sign(r.Header, d)
	return nil
}

// result keeps credentials out of what a delivery reports.
func (i *instance) result(r actionapi.Result) actionapi.Result {
	r.Detail = i.secrets.Redact(r.Detail)
	if r.Err != nil {
		r.Err = &scrubbed{msg: "webhook: " + i.secrets.Redact(r.Err.Error()), err: r.Err}
	}
	return r
}

// hideURL replaces the URL that net/http errors quote with the redacted
// target: a rendered query may hold a token no Redactor knows.
func hideURL(err error, d *delivery) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: d.target, Err: ue.Err}
	}
	return err
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// sensitive are parts of header and query names whose values are
// credentials.
var sensitive = []string{"auth", "token", "secret", "password", "passwd", "key", "sig", "cookie", "session", "credential"}

func sensitiveName(name string) bool {
	lower := strings.ToLower(name)
	return slices.ContainsFunc(sensitive, func(s string) bool { return strings.Contains(lower, s) })
}

// showHeader is a header value as `livehook test` may show it.
func (i *instance) showHeader(name, v string) string {
	if !sensitiveName(name) && i.secrets.Redact(v) == v {
		return v
	}
	// Keep an Authorization scheme such as "Bearer": it helps debugging.
	if scheme, _, ok := strings.Cut(v, " "); ok && strings.HasSuffix(strings.ToLower(name), "authorization") {
		return scheme + " " + secret.Redacted
	}
	return secret.Redacted
}

// showBody is the body as `livehook test` shows it: JSON as JSON.
func (i *instance) showBody(body []byte) any {
	if len(body) == 0 {
		return nil
	}
	s := i.secrets.Redact(string(body))
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return s
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters: a rendered line break
// would otherwise end the header.
func validHeaderValue(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f })
}
