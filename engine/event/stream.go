package event

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/livehook/livehook/internal/textcut"
)

// Bounds on a stream callback's query. Aliyun sends ten parameters of a
// few dozen bytes each; usrargs, the pusher's own parameters, is the only
// long one.
const (
	MaxQueryParams = 32
	MaxQueryValue  = 4 << 10 // bytes in one parameter
	MaxQueryBytes  = 8 << 10 // bytes in all names and values together
)

// authKeyArg is the push URL's signed token (Aliyun's URL authentication):
// whoever holds it can push to the stream until it expires, so livehook
// keeps it out of push_args and masks it in the payload.
const authKeyArg = "auth_key"

// DecodeStream decodes ApsaraVideo Live's stream publish and interruption
// callback, a GET whose query carries action (publish or publish_done), id
// (the stream name), app (the ingest domain, or the streaming domain when
// none is bound) and appname (the AppName), and may carry ip (the pushing
// client), time (Unix seconds), usrargs (the ingest URL's own parameters,
// URL-encoded), node (the CDN node) and, in a stream's first callback only,
// height and width.
//
// An action other than the two is taken as it is: refusing it would only
// make Aliyun retry what will never change.
func DecodeStream(q url.Values) (*Event, error) {
	ev := &Event{Source: SourceStream, Kind: KindStream, Payload: make(map[string]any, len(q))}
	get, err := readQuery(q, "a stream callback carries action, id, app and appname in its query", []requiredParam{
		{"action", "publish or publish_done", &ev.Event},
		{"id", "the stream name", &ev.Stream},
		{"app", "the ingest domain", &ev.Domain},
		{"appname", "the AppName", &ev.App},
	})
	if err != nil {
		return nil, err
	}
	ev.IngestDomain = ev.Domain
	ev.ClientIP, ev.Node = get("ip"), get("node")
	for _, f := range []struct {
		name, what string
		dst        *int64
	}{
		{"time", "Unix seconds", &ev.Time}, {"width", "pixels", &ev.Width}, {"height", "pixels", &ev.Height},
	} {
		v := get(f.name)
		if v == "" {
			continue // absent: height and width come with a stream's first callback only
		}
		n, ok := wholeNumber(v)
		if !ok {
			return nil, refuse("bad_field", "parameter %q: want a whole number of %s, got %q", f.name, f.what, quoted(v))
		}
		*f.dst = n
	}
	usrargs := get("usrargs")
	ev.PushArgs = pushArgs(usrargs)
	for k, vs := range q {
		ev.Payload[k] = vs[0]
	}
	if usrargs != "" {
		ev.Payload["usrargs"] = maskAuthKey(usrargs)
	}
	return ev, nil
}

// checkQuery refuses a query livehook could not keep or would read
// ambiguously: too many or too long parameters, invalid UTF-8, and a
// parameter given twice (a proxy and livehook could read different ones).
// requiredParam is a query parameter a callback must carry, and the event
// field it fills.
type requiredParam struct {
	name, what string
	dst        *string
}

// readQuery checks a callback's query, fills its required parameters in,
// and returns a reader of the first value of any other; what says what the
// query must carry, for a callback that sent none.
func readQuery(q url.Values, what string, required []requiredParam) (get func(string) string, err error) {
	if len(q) == 0 {
		return nil, refuse("missing_field", "no query: %s", what)
	}
	if err := checkQuery(q); err != nil {
		return nil, err
	}
	get = func(name string) string {
		if v := q[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	for _, f := range required {
		if *f.dst = get(f.name); *f.dst == "" {
			return nil, refuse("missing_field", "missing required parameter %q (%s)", f.name, f.what)
		}
	}
	return get, nil
}

func checkQuery(q url.Values) error {
	if len(q) > MaxQueryParams {
		return refuse("query_too_large", "query has %d parameters: at most %d", len(q), MaxQueryParams)
	}
	total := 0
	for k, vs := range q {
		if len(vs) > 1 {
			return refuse("duplicate_field", "parameter %q is given %d times", quoted(k), len(vs))
		}
		for _, v := range vs {
			if len(v) > MaxQueryValue {
				return refuse("query_too_large", "parameter %q is %d bytes: at most %d", quoted(k), len(v), MaxQueryValue)
			}
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return refuse("invalid_utf8", "query is not valid UTF-8")
			}
			total += len(k) + len(v)
		}
	}
	if total > MaxQueryBytes {
		return refuse("query_too_large", "query is %d bytes: at most %d", total, MaxQueryBytes)
	}
	return nil
}

// wholeNumber reads decimal digits only, so "+5", "5.0" and " 5" are refused.
func wholeNumber(s string) (int64, bool) {
	if s == "" || len(s) > 18 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// pushArgs reads usrargs, the parameters of the ingest URL, as the
// recording callback's push_args are read: the first value of a name wins.
// The pusher wrote them, so a malformed pair is skipped, not refused.
func pushArgs(usrargs string) map[string]string {
	if usrargs == "" {
		return nil
	}
	vals, _ := url.ParseQuery(usrargs) // keeps every pair it could read
	out := make(map[string]string, len(vals))
	for k, vs := range vals {
		if k != authKeyArg && len(vs) > 0 {
			out[k] = vs[0]
		}
	}
	return out
}

// maskAuthKey hides the value of auth_key in usrargs, leaving the rest as
// Aliyun sent it.
func maskAuthKey(usrargs string) string {
	pairs := strings.Split(usrargs, "&")
	for i, p := range pairs {
		name, _, _ := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(name); err == nil && k == authKeyArg {
			pairs[i] = name + "=****"
		}
	}
	return strings.Join(pairs, "&")
}

// quoted is s cut short enough to quote in a refusal.
func quoted(s string) string { return textcut.Truncate(s, quoteMax) }
