package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/livehook/livehook/plugins/sdk"
	"github.com/livehook/livehook/plugins/sdk/sdkhttp"
)

// settings are an instance's settings, as plugin.yaml declares them.
type settings struct {
	URL    string `json:"url"`    // the bot's webhook, token included
	Secret string `json:"secret"` // the bot's signing secret, if it signs
}

// params are a step's rendered parameters.
type params struct {
	MsgType string          `json:"msg_type"` // text (default) or interactive
	Text    string          `json:"text"`
	Title   string          `json:"title"`
	Color   string          `json:"color"`
	Card    json.RawMessage `json:"card"`
}

// codeRateLimited is the code commonly quoted for a bot over its rate
// limit (100/min, 5/s); the spec marks it unconfirmed.
const codeRateLimited = 11232

type handler struct {
	client *retryablehttp.Client
	now    func() time.Time
}

func (h handler) handle(ctx context.Context, req *sdk.Request) sdk.Response {
	var (
		s settings
		p params
	)
	if err := req.DecodeSettings(&s); err != nil {
		return sdk.Permanent("settings: %v", err)
	}
	if err := req.DecodeParams(&p); err != nil {
		return sdk.Permanent("params: %v", err)
	}
	msg, err := message(p)
	if err != nil {
		return sdk.Permanent("%v", err)
	}
	if s.Secret != "" {
		ts := h.now().Unix()
		msg["timestamp"] = strconv.FormatInt(ts, 10)
		msg["sign"] = sign(ts, s.Secret)
	}
	rep, err := sdkhttp.PostJSON(ctx, h.client, s.URL, msg)
	if err != nil {
		return sdk.Retryable("%v", err)
	}
	// Feishu's verdict is the code in its JSON reply; older deployments
	// answer StatusCode/StatusMessage instead.
	var ans struct {
		Code          *int   `json:"code"`
		Msg           string `json:"msg"`
		StatusCode    *int   `json:"StatusCode"`
		StatusMessage string `json:"StatusMessage"`
	}
	if json.Unmarshal(rep.Body, &ans) != nil || (ans.Code == nil && ans.StatusCode == nil) {
		return rep.Unexpected("Feishu")
	}
	if ans.Code == nil {
		ans.Code, ans.Msg = ans.StatusCode, ans.StatusMessage
	}
	detail := fmt.Sprintf("code %d: %s", *ans.Code, ans.Msg)
	switch *ans.Code {
	case 0:
		return sdk.Delivered(detail)
	case codeRateLimited:
		r := sdk.Retryable("%s", detail)
		r.RetryAfter = rep.RetryAfter() // if the refusal came with one
		return r
	}
	// Bad signature (19021), bad token, a keyword or IP the bot refuses:
	// the bot's configuration must change before a retry can help.
	return sdk.Permanent("%s", detail)
}

// message builds the JSON body for p.
func message(p params) (map[string]any, error) {
	switch p.MsgType {
	case "", "text":
		if p.Text == "" {
			return nil, errors.New("text is required for msg_type text")
		}
		return map[string]any{"msg_type": "text", "content": map[string]any{"text": p.Text}}, nil
	case "interactive":
		if len(p.Card) > 0 && string(p.Card) != "null" {
			return map[string]any{"msg_type": "interactive", "card": p.Card}, nil
		}
		if p.Title == "" || p.Text == "" {
			return nil, errors.New("msg_type interactive needs card, or title and text")
		}
		return map[string]any{"msg_type": "interactive", "card": simpleCard(p)}, nil
	}
	return nil, fmt.Errorf("msg_type %q: want text or interactive", p.MsgType)
}

// simpleCard is a card with a header and one markdown block, for users
// who do not want to write card JSON.
func simpleCard(p params) map[string]any {
	header := map[string]any{"title": map[string]any{"tag": "plain_text", "content": p.Title}}
	if p.Color != "" {
		header["template"] = p.Color
	}
	return map[string]any{
		"config":   map[string]any{"wide_screen_mode": true},
		"header":   header,
		"elements": []any{map[string]any{"tag": "div", "text": map[string]any{"tag": "lark_md", "content": p.Text}}},
	}
}

// sign is Feishu's signature: the HMAC-SHA256 of an empty message keyed
// with timestamp+"\n"+secret, in base64. Key and message are the reverse
// of DingTalk's.
func sign(ts int64, secret string) string {
	mac := hmac.New(sha256.New, []byte(strconv.FormatInt(ts, 10)+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
