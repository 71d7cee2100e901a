// Package slack is the `slack` action: it posts a message to a Slack
// incoming webhook.
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
)

func init() {
	actionapi.Register(actionapi.Type{
		Name: "slack",
		Doc:  "post a message to a Slack incoming webhook",
		Open: open,
	})
}

// Config is a slack instance's settings.
type Config struct {
	// URL is the incoming webhook URL, https://hooks.slack.com/services/….
	// It is a credential: it is never shown, logged or put in errors.
	URL                   secret.Secret `yaml:"url"`
	actionapi.HTTPOptions `yaml:",inline"`
	Params                `yaml:",inline"`
}

// Params can be set on the instance and overridden per step.
type Params struct {
	// Text is the message (mrkdwn), and the notification fallback when
	// Blocks are given. Required; it may not render empty.
	Text tmpl.Template `yaml:"text"`
	// Blocks is a template that renders to a JSON array of Block Kit
	// blocks. Rendering only whitespace sends no blocks.
	Blocks tmpl.Template `yaml:"blocks"`
}

// Slack accepts about one message per second per webhook and tolerates
// short bursts; beyond that it answers 429. Queueing below that rate keeps
// the webhook from being throttled or revoked; the rate is the webhook's,
// whichever instances and replicas send to it (see actionapi.Pacing).
const (
	sendInterval = time.Second
	sendBurst    = 3
)

type instance struct {
	name   string
	url    secret.Secret
	target string
	client *retryablehttp.Client
	pace   *actionapi.Pacing // about one message a second
	// hold keeps the wait Slack asked for (Retry-After) for every delivery
	// of the webhook: Slack may revoke a webhook that ignores its 429s.
	hold actionapi.Hold
	now  func() time.Time
	// hider keeps the webhook URL out of result texts: net/http quotes
	// the whole URL in its errors.
	hider    *secret.URLHider
	defaults Params
}

var (
	_ actionapi.Instance = (*instance)(nil)
	_ actionapi.Step     = (*step)(nil)
)

func open(s actionapi.Settings) (actionapi.Instance, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	if c.URL.IsZero() {
		return nil, fmt.Errorf("%s: url is required", s.Name)
	}
	u, ok := secret.ParseURL(c.URL.Reveal())
	if !ok {
		return nil, fmt.Errorf("%s: url: want an http(s) webhook URL such as https://hooks.slack.com/services/…", s.Name)
	}
	shown := target(u)
	return &instance{
		name:     s.Name,
		url:      c.URL,
		target:   shown,
		client:   s.Deps.HTTP.Client(c.HTTPOptions),
		pace:     s.Deps.Pacing(s.Name, "slack", c.URL.Reveal(), sendInterval, sendBurst),
		now:      s.Deps.Now,
		hider:    secret.NewURLHider(c.URL.Reveal(), u, shown, u.Path, u.EscapedPath()),
		defaults: c.Params,
	}, nil
}

// target is u as shown to users: Slack's webhook URLs are
// /services/<team>/<bot>/<token>, all of it a credential but the first word.
func target(u *url.URL) string {
	prefix := "/"
	if strings.HasPrefix(u.Path, "/services/") {
		prefix = "/services/"
	}
	return u.Scheme + "://" + u.Host + prefix + secret.Redacted
}

func (i *instance) Step(with actionapi.Params) (actionapi.Step, error) {
	p := i.defaults
	if err := with.Decode(&p); err != nil {
		return nil, err
	}
	if p.Text.IsZero() {
		return nil, fmt.Errorf("%s: text is required (set it on the instance or in with:)", i.name)
	}
	return &step{i: i, params: p}, nil
}

func (i *instance) Close() error { return nil }

type step struct {
	i      *instance
	params Params
}

// message is the webhook payload.
type message struct {
	Text   string          `json:"text"`
	Blocks json.RawMessage `json:"blocks,omitempty"`
}

func (s *step) Plan(in actionapi.Input) (actionapi.Plan, error) {
	data := in.Data()
	text, err := s.params.Text.Render(data)
	if err != nil {
		return actionapi.Plan{}, fmt.Errorf("slack: text: %w", err)
	}
	// Slack would refuse it with no_text; failing here shows why in
	// `livehook test` and spends no request.
	if strings.TrimSpace(text) == "" {
		return actionapi.Plan{}, errors.New("slack: text rendered empty (slack rejects it with no_text)")
	}
	m := message{Text: text}
	if m.Blocks, err = renderBlocks(&s.params.Blocks, data); err != nil {
		return actionapi.Plan{}, fmt.Errorf("slack: blocks: %w", err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return actionapi.Plan{}, fmt.Errorf("slack: encode message: %w", err)
	}
	return actionapi.Plan{Method: http.MethodPost, Target: s.i.target, Body: m, Payload: body}, nil
}

// renderBlocks renders t and checks that it is a JSON array of objects;
// nil means no blocks.
func renderBlocks(t *tmpl.Template, data map[string]any) (json.RawMessage, error) {
	if t.IsZero() {
		return nil, nil
	}
	src, err := t.Render(data)
	if err != nil {
		return nil, err
	}
	src = strings.TrimSpace(src)
	if src == "" {
		return nil, nil
	}
	var blocks []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(src), &blocks); err != nil {
		return nil, fmt.Errorf("want a JSON array of block objects: %w", err)
	}
	return json.RawMessage(src), nil
}

func (s *step) Do(ctx context.Context, p actionapi.Plan) actionapi.Result {
	return s.i.scrub(s.i.send(ctx, p))
}

// send posts once, paced, unless Slack has asked the webhook to wait. A
// reply that asks for a longer wait than a quick retry's ends the attempt
// with the wait as its RetryAfter; the hold turns the instance's other
// deliveries away until then without sending them.
func (i *instance) send(ctx context.Context, p actionapi.Plan) actionapi.Result {
	body, ok := p.Payload.([]byte)
	if !ok {
		return actionapi.Failed(actionapi.Permanent, errors.New("plan was not made by a slack step"))
	}
	return i.hold.Send(ctx, i.now, i.pace.Wait, func() actionapi.Result { return i.post(ctx, body) })
}

// post makes one delivery, HTTP retries included.
func (i *instance) post(ctx context.Context, body []byte) actionapi.Result {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, i.url.Reveal(), body)
	if err != nil {
		return actionapi.Failed(actionapi.Permanent, fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	r, reply := actionapi.HTTPResult(i.client.Do(req))
	if r.Outcome != actionapi.Delivered {
		return r
	}
	// Slack's one success is 200 with the body "ok". Any other 2xx reply
	// came from something else and may or may not have posted: resending
	// could duplicate it, so it is not retried.
	if got := strings.TrimSpace(string(reply)); got != "ok" {
		detail := fmt.Sprintf("%s: unexpected reply %q (slack answers ok)", r.Detail, got)
		return actionapi.Result{Outcome: actionapi.Permanent, Detail: detail, Err: errors.New(detail)}
	}
	return actionapi.Result{Outcome: actionapi.Delivered, Detail: "ok"}
}

// scrub keeps the webhook URL out of a result's texts.
func (i *instance) scrub(r actionapi.Result) actionapi.Result {
	return r.Scrubbed("slack", i.hider.Hide)
}
