// Package aliyun holds what the Aliyun cloud-job actions (oss, mps) share:
// rendering object names and describing failures without secrets.
package aliyun

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/livehook/livehook/engine/tmpl"
)

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

// OpError shows the service's words and keeps the SDK's error for errors.As.
type OpError struct {
	Service string // "oss", "mps"
	Detail  string
	Err     error
}

func (e *OpError) Error() string { return e.Service + ": " + e.Detail }
func (e *OpError) Unwrap() error { return e.Err }
