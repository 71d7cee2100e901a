// Package dingtalk is the `dingtalk` action: it sends a message through a
// DingTalk custom robot (自定义机器人), signing it when the robot uses 加签.
package dingtalk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
)

func init() {
	actionapi.Register(actionapi.Type{
		Name: "dingtalk",
		Doc:  "send a message through a DingTalk custom robot",
		Open: open,
	})
}

// Config is a dingtalk instance's settings.
type Config struct {
	// URL is the robot's webhook,
	// https://oapi.dingtalk.com/robot/send?access_token=…; the token is a
	// credential and is never shown.
	URL secret.Secret `yaml:"url"`
	// Secret is the robot's signing secret (SEC…), for robots that use
	// 加签. Without it requests are not signed.
	Secret                secret.Secret `yaml:"secret"`
	actionapi.HTTPOptions `yaml:",inline"`
	Params                `yaml:",inline"`
}

// Params can be set on the instance and overridden per step. Every string
// but msgtype and btn_orientation is a template; a template that is given
// must not render empty.
type Params struct {
	// MsgType is text (default), markdown or actionCard.
	MsgType string `yaml:"msgtype"`
	// Text is the message, required. For a robot with security keywords it
	// must contain one.
	Text tmpl.Template `yaml:"text"`
	// Title is required for markdown (the notification line) and actionCard.
	Title tmpl.Template `yaml:"title"`
	// SingleTitle and SingleURL make an actionCard's one whole-card button.
	SingleTitle tmpl.Template `yaml:"single_title"`
	SingleURL   tmpl.Template `yaml:"single_url"`
	// Btns are an actionCard's separate buttons, used without single_*.
	Btns []Button `yaml:"btns"`
	// BtnOrientation lays out Btns: "0" stacked (default), "1" side by side.
	BtnOrientation string `yaml:"btn_orientation"`
	// AtMobiles, AtUserIDs and AtAll mention members (text and markdown).
	AtMobiles []string `yaml:"at_mobiles"`
	AtUserIDs []string `yaml:"at_user_ids"`
	AtAll     bool     `yaml:"at_all"`
}

// Button is one actionCard button.
type Button struct {
	Title     tmpl.Template `yaml:"title"`
	ActionURL tmpl.Template `yaml:"action_url"`
}

const (
	msgText       = "text"
	msgMarkdown   = "markdown"
	msgActionCard = "actionCard"
)

// DingTalk allows a robot 20 messages a minute and throttles it for 10
// minutes beyond that (errcode 130101). A bucket of 5 refilled every 4s
// lets a short burst through and never allows more than 5+15 = 20 in any
// minute; the rest wait their turn. The limit is the robot's, so its slots
// are shared by every instance and replica sending to it (see
// actionapi.Pacing). Only deliveries in progress wait, at most
// delivery.concurrency of them per replica, so a wait lasts at most that
// many turns each, on slots no other robot could use.
const (
	sendInterval = 4 * time.Second
	sendBurst    = 5
	// errTooFast is DingTalk's "send too fast" errcode.
	errTooFast = 130101
	// throttlePenalty is how long DingTalk blocks a robot that sent too fast.
	throttlePenalty = 10 * time.Minute
)

type instance struct {
	name   string
	url    *url.URL
	secret secret.Secret
	target string
	client *retryablehttp.Client
	pace   *actionapi.Pacing // at most 20 messages a minute
	hold   actionapi.Hold    // what DingTalk asked the robot to wait
	now    func() time.Time
	// hider keeps the token and secret out of result texts: net/http
	// quotes the whole URL in its errors.
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
		return nil, fmt.Errorf("%s: url: want the robot's webhook URL, https://oapi.dingtalk.com/robot/send?access_token=…", s.Name)
	}
	if u.Query().Get("access_token") == "" {
		return nil, fmt.Errorf("%s: url: missing the access_token query parameter", s.Name)
	}
	if c.MsgType == "" {
		c.MsgType = msgText
	}
	if err := c.Params.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	// Every query value, the access_token among them, reads ****.
	shown := secret.RedactedURL(u)
	// The robot's pace is its access token's, whatever else the URL says.
	return &instance{
		name:     s.Name,
		url:      u,
		secret:   c.Secret,
		target:   shown,
		client:   s.Deps.HTTP.Client(c.HTTPOptions),
		pace:     s.Deps.Pacing(s.Name, "dingtalk", u.Query().Get("access_token"), sendInterval, sendBurst),
		now:      s.Deps.Now,
		hider:    secret.NewURLHider(c.URL.Reveal(), u, shown, c.Secret.Reveal()),
		defaults: c.Params,
	}, nil
}

// check validates the values that can be checked before the step's with:
// is merged.
func (p *Params) check() error {
	if !slices.Contains([]string{msgText, msgMarkdown, msgActionCard}, p.MsgType) {
		return fmt.Errorf("msgtype %q: want text, markdown or actionCard", p.MsgType)
	}
	if p.BtnOrientation != "" && p.BtnOrientation != "0" && p.BtnOrientation != "1" {
		return fmt.Errorf(`btn_orientation %q: want "0" (stacked) or "1" (side by side)`, p.BtnOrientation)
	}
	return nil
}

// complete validates merged parameters: what the msgtype needs, and nothing
// it would silently ignore.
func (p *Params) complete() error {
	if err := p.check(); err != nil {
		return err
	}
	if p.Text.IsZero() {
		return errors.New("text is required (set it on the instance or in with:)")
	}
	card := !p.SingleTitle.IsZero() || !p.SingleURL.IsZero() || len(p.Btns) > 0 || p.BtnOrientation != ""
	switch p.MsgType {
	case msgText:
		if !p.Title.IsZero() {
			return errors.New("title applies to markdown and actionCard, not text")
		}
	case msgMarkdown:
		if p.Title.IsZero() {
			return errors.New("title is required for markdown")
		}
	case msgActionCard:
		if p.Title.IsZero() {
			return errors.New("title is required for actionCard")
		}
		if len(p.AtMobiles) > 0 || len(p.AtUserIDs) > 0 || p.AtAll {
			return errors.New("at_mobiles, at_user_ids and at_all apply to text and markdown, not actionCard")
		}
		return p.buttons()
	}
	if card {
		return fmt.Errorf("single_title, single_url, btns and btn_orientation apply to actionCard, not %s", p.MsgType)
	}
	return nil
}

// buttons checks that an actionCard has one way to act on it.
func (p *Params) buttons() error {
	single := !p.SingleTitle.IsZero() || !p.SingleURL.IsZero()
	switch {
	case single && (p.SingleTitle.IsZero() || p.SingleURL.IsZero()):
		return errors.New("single_title and single_url go together")
	case single && len(p.Btns) > 0:
		return errors.New("give either single_title/single_url or btns, not both")
	case !single && len(p.Btns) == 0:
		return errors.New("actionCard needs single_title/single_url or btns")
	}
	for i, b := range p.Btns {
		if b.Title.IsZero() || b.ActionURL.IsZero() {
			return fmt.Errorf("btns[%d]: title and action_url are required", i)
		}
	}
	return nil
}

func (i *instance) Step(with actionapi.Params) (actionapi.Step, error) {
	p := i.defaults
	if err := with.Decode(&p); err != nil {
		return nil, err
	}
	if err := p.complete(); err != nil {
		return nil, fmt.Errorf("%s: %w", i.name, err)
	}
	return &step{i: i, params: p}, nil
}

func (i *instance) Close() error { return nil }

type step struct {
	i      *instance
	params Params
}

func (s *step) Plan(in actionapi.Input) (actionapi.Plan, error) {
	d, err := s.params.render(in.Data())
	if err != nil {
		return actionapi.Plan{}, fmt.Errorf("dingtalk: %w", err)
	}
	body, truncated, err := d.encode()
	if err != nil {
		return actionapi.Plan{}, fmt.Errorf("dingtalk: encode message: %w", err)
	}
	info := map[string]any{"msgtype": d.msg.MsgType, "signed": !s.i.secret.IsZero()}
	if truncated {
		info["truncated"] = true
	}
	return actionapi.Plan{Method: http.MethodPost, Target: s.i.target, Body: d.msg, Info: info, Payload: body}, nil
}

func (s *step) Do(ctx context.Context, p actionapi.Plan) actionapi.Result {
	body, ok := p.Payload.([]byte)
	if !ok {
		return s.i.scrub(actionapi.Failed(actionapi.Permanent, errors.New("plan was not made by a dingtalk step")))
	}
	return s.i.scrub(s.i.deliver(ctx, body))
}

// deliver sends body once, paced, unless DingTalk has asked this robot to
// wait. A refusal that asks for a wait ("send too fast", a Retry-After)
// ends the attempt with the wait as its RetryAfter: the runner schedules
// the next attempt, and the hold turns the instance's other deliveries
// away until then without sending them.
func (i *instance) deliver(ctx context.Context, body []byte) actionapi.Result {
	return i.hold.Send(ctx, i.now, i.pace.Wait, func() actionapi.Result { return i.send(ctx, body) })
}

// send makes one delivery, HTTP retries included.
func (i *instance) send(ctx context.Context, body []byte) actionapi.Result {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, i.signedURL(), body)
	if err != nil {
		return actionapi.Failed(actionapi.Permanent, fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json;charset=utf-8")
	r, reply := actionapi.HTTPResult(i.client.Do(req))
	if reply == nil || r.Outcome == actionapi.Retryable {
		return r // a transport error, or a status worth retrying
	}
	// DingTalk answers HTTP 200 even when it refuses a message: the errcode
	// decides.
	var ans struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(reply, &ans); err != nil || ans.ErrCode == nil {
		if r.Outcome != actionapi.Delivered {
			return r
		}
		return actionapi.Failed(actionapi.Retryable, fmt.Errorf("%s with a reply that is not DingTalk's JSON: %.200q", r.Detail, reply))
	}
	detail := fmt.Sprintf("errcode %d: %s", *ans.ErrCode, ans.ErrMsg)
	switch *ans.ErrCode {
	case 0:
		return actionapi.Result{Outcome: actionapi.Delivered, Detail: detail}
	case errTooFast:
		// Resending within the penalty can only be refused again.
		r := actionapi.Failed(actionapi.Retryable, errors.New(detail))
		r.RetryAfter = throttlePenalty
		return r
	}
	// Sign, keyword, IP and token errors: the robot's configuration has to
	// change before anything will go through.
	return actionapi.Failed(actionapi.Permanent, errors.New(detail))
}

// signedURL is the webhook URL, with a fresh timestamp and signature when
// the robot is signed.
func (i *instance) signedURL() string {
	if i.secret.IsZero() {
		return i.url.String()
	}
	u := *i.url
	ts := strconv.FormatInt(i.now().UnixMilli(), 10)
	u.RawQuery += "&timestamp=" + ts + "&sign=" + sign(ts, i.secret.Reveal())
	return u.String()
}

// scrub keeps the webhook URL and signing secret out of a result's texts.
func (i *instance) scrub(r actionapi.Result) actionapi.Result {
	return r.Scrubbed("dingtalk", i.hider.Hide)
}
