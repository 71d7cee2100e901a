// Package alicloud is what livehook's Alibaba Cloud clients share, whatever
// they call: checking regions and endpoints, picking the AccessKey they
// sign with, tying the SDK's requests to a context, and describing failed
// exchanges without the signed query.
package alicloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/livehook/livehook/engine/secret"
)

// The standard variables of Alibaba Cloud's credential chain.
const (
	EnvAccessKeyID     = "ALIBABA_CLOUD_ACCESS_KEY_ID"
	EnvAccessKeySecret = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
)

var regionRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// CheckRegion checks a region id such as cn-shanghai.
func CheckRegion(region string) error {
	switch {
	case region == "":
		return errors.New("region is required (e.g. cn-shanghai)")
	case !regionRE.MatchString(region):
		return fmt.Errorf("region %q: want a region id such as cn-shanghai", region)
	}
	return nil
}

// ParseEndpoint reads an endpoint setting: scheme://host[:port], https if
// the scheme is left out, and nothing more. example is an endpoint shown
// in the error.
func ParseEndpoint(endpoint, example string) (*url.URL, error) {
	raw := endpoint
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("endpoint %q: want scheme://host[:port], e.g. %s", endpoint, example)
	}
	return u, nil
}

// AccessKey is the key pair requests are signed with.
type AccessKey struct {
	ID, Secret string
	FromEnv    bool // read from the environment, not the settings
}

// AccessKeyFor picks the AccessKey: both settings, or neither and then the
// environment variables envID and envSecret. A secret read from the
// environment is added to r, since the engine scrubs only the settings'
// secrets. Nothing else is tried: the SDKs' default chains probe the ECS
// metadata service over the network.
func AccessKeyFor(id, key secret.Secret, envID, envSecret string, r *secret.Redactor) (AccessKey, error) {
	switch {
	case !id.IsZero() && !key.IsZero():
		return AccessKey{ID: id.Reveal(), Secret: key.Reveal()}, nil
	case !id.IsZero() || !key.IsZero():
		return AccessKey{}, errors.New("access_key_id and access_key_secret go together: set both or neither")
	}
	k := AccessKey{ID: os.Getenv(envID), Secret: os.Getenv(envSecret), FromEnv: true}
	if k.ID == "" || k.Secret == "" {
		return AccessKey{}, fmt.Errorf("no credentials: set access_key_id and access_key_secret, or the environment variables %s and %s", envID, envSecret)
	}
	if r != nil {
		r.Add(k.Secret)
	}
	return k, nil
}

// TransportDetail describes a failed exchange without the URL's query,
// which carries the AccessKey id and the request signature.
func TransportDetail(ue *url.Error) string {
	where := "the endpoint"
	if u, err := url.Parse(ue.URL); err == nil {
		where = u.Scheme + "://" + u.Host + u.Path
	}
	if ue.Timeout() {
		return fmt.Sprintf("%s %s: timed out", ue.Op, where)
	}
	return fmt.Sprintf("%s %s: %v", ue.Op, where, ue.Err)
}

// Guard runs one SDK call. The SDK type-asserts fields of error replies
// without checking, so a malformed reply would otherwise crash the daemon;
// here it becomes an error.
func Guard(call func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &MalformedReply{fmt.Sprint(p)}
		}
	}()
	return call()
}

// MalformedReply is a reply the SDK could not handle.
type MalformedReply struct{ What string }

func (e *MalformedReply) Error() string { return "the SDK could not read the reply: " + e.What }

// WithContext wraps base so that the SDK's context-free requests stop when
// ctx ends. It is a wrapper, not the *http.Transport itself: the SDK
// mutates an *http.Transport it is given (dialer, TLS, proxy), and base is
// shared.
func WithContext(ctx context.Context, base http.RoundTripper) http.RoundTripper {
	return &ctxTransport{ctx: ctx, base: base}
}

type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t *ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(r.Context()) // keeps the client's timeout
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		stop()
		cancel(nil)
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { stop(); cancel(nil) }}
	return resp, nil
}

// releaseBody frees the request's context once the body is closed.
type releaseBody struct {
	io.ReadCloser
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}
