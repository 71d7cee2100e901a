// Package sdkhttp is what HTTP plugins share: an outbound client whose
// retries fit inside a plugin's run, a JSON POST whose errors never quote
// the URL, and the classification of replies that are not the service's
// own verdict. It is apart from package sdk because net/http more than
// doubles a Go plugin's start-up time (see docs/plugins.md).
package sdkhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/livehook/livehook/internal/textcut"
	"github.com/livehook/livehook/plugins/protocol"
	"github.com/livehook/livehook/plugins/sdk"
)

// maxReply is how much of a service's reply is read.
const maxReply = 64 << 10

// Client returns an outbound client for a plugin. Within the request's
// deadline it retries network errors and 5xx (but 501) quickly, since
// starting the plugin again costs more than a retry. A 429 is not retried
// here: its Retry-After could outlast the plugin's timeout, so it goes back
// to livehook as a retryable failure (see Reply.Unexpected).
func Client() *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   cleanhttp.DefaultClient(),
		RetryWaitMin: 200 * time.Millisecond,
		RetryWaitMax: 2 * time.Second,
		RetryMax:     2,
		CheckRetry:   checkRetry,
		Backoff:      retryablehttp.DefaultBackoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		// No Logger: its lines would carry webhook URLs, tokens and all.
	}
}

func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	return resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented, nil
}

// Reply is a service's HTTP answer.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte // at most 64 KiB
}

// PostJSON posts body, marshalled to JSON, to rawURL. Its errors never
// quote the URL: webhook URLs carry tokens.
func PostJSON(ctx context.Context, c *retryablehttp.Client, rawURL string, body any) (Reply, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Reply{}, fmt.Errorf("encode body: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, rawURL, b)
	if err != nil {
		return Reply{}, fmt.Errorf("build request: %w", withoutURL(err))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		return Reply{}, fmt.Errorf("POST: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return Reply{}, fmt.Errorf("read reply: %w", withoutURL(err))
	}
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// withoutURL drops the URL that net/http puts into its errors.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Unexpected classifies a reply that does not carry the service's own
// verdict. 408, 429 and 5xx are retryable (with the reply's Retry-After),
// and so is a 2xx, which means something other than the service answered
// (a proxy, a captive portal); other statuses are permanent.
func (r Reply) Unexpected(service string) sdk.Response {
	ok := r.Status >= 200 && r.Status < 300
	detail := fmt.Sprintf("HTTP %d: %s", r.Status, strings.TrimSpace(textcut.Truncate(string(r.Body), 200)))
	if ok {
		detail = fmt.Sprintf("HTTP %d with a reply that is not %s's JSON: %q", r.Status, service, textcut.Truncate(string(r.Body), 200))
	}
	switch {
	case ok, r.Status == http.StatusRequestTimeout, r.Status == http.StatusTooManyRequests,
		r.Status >= 500 && r.Status != http.StatusNotImplemented:
		resp := sdk.Response{Outcome: protocol.Retryable, Detail: detail}
		resp.RetryAfter, _ = retryAfter(r.Header.Get("Retry-After"))
		return resp
	}
	return sdk.Response{Outcome: protocol.Permanent, Detail: detail}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}
