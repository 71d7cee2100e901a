package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/livehook/livehook/internal/textcut"
	"github.com/livehook/livehook/plugins/sdk"
	"github.com/livehook/livehook/plugins/sdk/sdkhttp"
)

// settings are an instance's settings, as plugin.yaml declares them.
type settings struct {
	URL string `json:"url"` // the robot's webhook; its key is the secret
}

// params are a step's rendered parameters.
type params struct {
	MsgType             string   `json:"msgtype"` // text (default) or markdown
	Content             string   `json:"content"`
	MentionedList       []string `json:"mentioned_list"`
	MentionedMobileList []string `json:"mentioned_mobile_list"`
}

const (
	// maxText is WeCom's limit on a text message's content, in bytes.
	maxText = 2048
	// errFreqLimit is the errcode for a robot over 20 messages a minute
	// (the spec marks the code unconfirmed).
	errFreqLimit = 45009
)

type handler struct {
	client *retryablehttp.Client
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
	rep, err := sdkhttp.PostJSON(ctx, h.client, s.URL, msg)
	if err != nil {
		return sdk.Retryable("%v", err)
	}
	// WeCom answers HTTP 200 even when it refuses: errcode decides.
	var ans struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if json.Unmarshal(rep.Body, &ans) != nil || ans.ErrCode == nil {
		return rep.Unexpected("WeCom")
	}
	detail := fmt.Sprintf("errcode %d: %s", *ans.ErrCode, ans.ErrMsg)
	switch *ans.ErrCode {
	case 0:
		return sdk.Delivered(detail)
	case errFreqLimit:
		r := sdk.Retryable("%s", detail)
		r.RetryAfter = time.Minute // the limit is per minute
		return r
	}
	// An invalid key, a malformed message: retrying cannot help.
	return sdk.Permanent("%s", detail)
}

// message builds the JSON body for p.
func message(p params) (map[string]any, error) {
	if p.Content == "" {
		return nil, errors.New("content is required")
	}
	switch p.MsgType {
	case "", "text":
		text := map[string]any{"content": textcut.Truncate(p.Content, maxText)}
		if len(p.MentionedList) > 0 {
			text["mentioned_list"] = p.MentionedList
		}
		if len(p.MentionedMobileList) > 0 {
			text["mentioned_mobile_list"] = p.MentionedMobileList
		}
		return map[string]any{"msgtype": "text", "text": text}, nil
	case "markdown":
		if len(p.MentionedList) > 0 || len(p.MentionedMobileList) > 0 {
			return nil, errors.New("mentioned_list and mentioned_mobile_list work with msgtype text only; in markdown write <@userid>")
		}
		return map[string]any{"msgtype": "markdown", "markdown": map[string]any{"content": p.Content}}, nil
	}
	return nil, fmt.Errorf("msgtype %q: want text or markdown", p.MsgType)
}
