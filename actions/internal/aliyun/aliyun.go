// Package aliyun holds what the Aliyun cloud-job actions (oss, mps) share:
// checking regions, buckets and endpoints, picking the AccessKey,
// rendering object names, and describing and classifying failures without
// secrets.
package aliyun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
)

var (
	regionRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
)

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

// CheckBucket checks a bucket name that field rendered.
func CheckBucket(field, bucket string) error {
	if !bucketRE.MatchString(bucket) {
		return fmt.Errorf("%s: %q is not a bucket name (3-63 lower-case letters, digits and hyphens)", field, bucket)
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
// secrets.
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

// Render renders one field, refusing the "<no value>" that a missing map
// key renders as: in a bucket, a key or a process string it is never meant.
func Render(field string, t *tmpl.Template, data map[string]any) (string, error) {
	if t.IsZero() { // an unset field; the zero Template cannot execute
		return "", nil
	}
	out, err := t.Render(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	if strings.Contains(out, "<no value>") {
		return "", fmt.Errorf("%s: rendered %q: a field it uses is missing from the event", field, out)
	}
	return strings.TrimSpace(out), nil
}

// Failed classifies an SDK error that is not the service's own reply: a
// failed exchange, network trouble and an ended context are retryable;
// anything else (a reply the SDK could not read) is permanent, since the
// job may have been queued and a retry could run it twice.
func Failed(service string, err error) actionapi.Result {
	var ue *url.Error
	if errors.As(err, &ue) {
		return actionapi.Failed(actionapi.Retryable, &OpError{Service: service, Detail: transportDetail(ue), Err: err})
	}
	outcome := actionapi.Permanent
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		outcome = actionapi.Retryable
	}
	return actionapi.Failed(outcome, &OpError{Service: service, Detail: err.Error(), Err: err})
}

// transportDetail describes a failed exchange without the URL's query,
// which carries the AccessKey id and the request signature.
func transportDetail(ue *url.Error) string {
	where := "the endpoint"
	if u, err := url.Parse(ue.URL); err == nil {
		where = u.Scheme + "://" + u.Host + u.Path
	}
	if ue.Timeout() {
		return fmt.Sprintf("%s %s: timed out", ue.Op, where)
	}
	return fmt.Sprintf("%s %s: %v", ue.Op, where, ue.Err)
}

// OpError shows the service's words and keeps the SDK's error for errors.As.
type OpError struct {
	Service string // "oss", "mps"
	Detail  string
	Err     error
}

func (e *OpError) Error() string { return e.Service + ": " + e.Detail }
func (e *OpError) Unwrap() error { return e.Err }
