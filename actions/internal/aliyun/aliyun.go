// Package aliyun holds what the Aliyun cloud-job actions (oss, mps) share
// beyond internal/alicloud: checking buckets, rendering object names, and
// classifying failures into results without secrets.
package aliyun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/internal/alicloud"
)

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

// CheckBucket checks a bucket name that field rendered.
func CheckBucket(field, bucket string) error {
	if !bucketRE.MatchString(bucket) {
		return fmt.Errorf("%s: %q is not a bucket name (3-63 lower-case letters, digits and hyphens)", field, bucket)
	}
	return nil
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
		return actionapi.Failed(actionapi.Retryable, &OpError{Service: service, Detail: alicloud.TransportDetail(ue), Err: err})
	}
	outcome := actionapi.Permanent
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		outcome = actionapi.Retryable
	}
	return actionapi.Failed(outcome, &OpError{Service: service, Detail: err.Error(), Err: err})
}

// OpError shows the service's words and keeps the SDK's error for errors.As.
type OpError struct {
	Service string // "oss", "mps"
	Detail  string
	Err     error
}

func (e *OpError) Error() string { return e.Service + ": " + e.Detail }
func (e *OpError) Unwrap() error { return e.Err }
