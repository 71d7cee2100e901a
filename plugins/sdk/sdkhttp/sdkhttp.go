// Package sdkhttp is what HTTP plugins share: an outbound client whose
// retries fit inside a plugin's run and leave long waits to livehook, a
// JSON POST whose errors never quote the URL, and the classification of
// replies that are not the service's own verdict. It is apart from package sdk because net/http more than
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
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/livehook/livehook/internal/httpretry"
	"github.com/livehook/livehook/internal/textcut"
	"github.com/livehook/livehook/plugins/protocol"
	"github.com/livehook/livehook/plugins/sdk"
)

// maxReply is how much of a service's reply is read.
const maxReply = 64 << 10

// Client returns an outbound client for a plugin. Within the request's
// context it retries network errors, 408, 429 and 5xx (but 501) quickly,
// since starting the plugin again costs more than a retry, and waits out a
// Retry-After of up to 10s that ends before the context does. A longer one
// is not slept through: the call returns the service's reply at once, and
// Reply.Unexpected hands its Retry-After back as the answer's retry_after,
// so livehook schedules the next run then and the run ends. The policy is
// the daemon's own (internal/httpretry).
func Client() *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   cleanhttp.DefaultClient(),
		RetryWaitMin: 200 * time.Millisecond,
		RetryWaitMax: 2 * time.Second,
		RetryMax:     2,
		CheckRetry:   httpretry.Check,
		Backoff:      httpretry.Backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		// No Logger: its lines would carry webhook URLs, tokens and all.
	}
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
// verdict. 408, 429 and 5xx are retryable (with the reply's RetryAfter),
// and so is a 2xx, which means something other than the
// service answered (a proxy, a captive portal); other statuses are
// permanent.
func (r Reply) Unexpected(service string) sdk.Response {
	ok := r.Status >= 200 && r.Status < 300
	detail := fmt.Sprintf("HTTP %d: %s", r.Status, strings.TrimSpace(textcut.Truncate(string(r.Body), 200)))
	if ok {
		detail = fmt.Sprintf("HTTP %d with a reply that is not %s's JSON: %q", r.Status, service, textcut.Truncate(string(r.Body), 200))
	}
	if ok || httpretry.RetryableStatus(r.Status) {
		return sdk.Response{Outcome: protocol.Retryable, Detail: detail, RetryAfter: r.RetryAfter()}
	}
	return sdk.Response{Outcome: protocol.Permanent, Detail: detail}
}

// RetryAfter is the wait the reply's Retry-After header asks for (seconds
// or an HTTP date, at most an hour), 0 without one. A handler that reads
// the service's own verdict from a refusal sets it on its Retryable answer.
func (r Reply) RetryAfter() time.Duration {
	d, _ := httpretry.RetryAfter(r.Header)
	return d
}
