package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/engine/yamlconf"
)

// endpoint is the `url` setting: a literal scheme and host, and a path and
// query that may hold template actions. Keeping the host literal means no
// event can redirect a delivery (and its signature) to another server.
type endpoint struct {
	base *url.URL       // scheme, userinfo and host
	rest *tmpl.Template // path and query, rendered per delivery
}

// UnmarshalYAML parses the url setting at load, reporting problems at its
// position.
func (e *endpoint) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return yamlconf.PositionError(n, "url: want a string")
	}
	p, err := parseEndpoint(n.Value)
	if err != nil {
		return yamlconf.PositionError(n, "%v", err)
	}
	*e = p
	return nil
}

func parseEndpoint(raw string) (endpoint, error) {
	scheme, after, ok := strings.Cut(raw, "://")
	if !ok {
		return endpoint{}, errors.New("url: want an absolute http:// or https:// URL")
	}
	// The authority ends at the first of "/", "?" or "#" (RFC 3986 3.2).
	end := strings.IndexAny(after, "/?#")
	if end < 0 {
		end = len(after)
	}
	authority, rest := after[:end], after[end:]
	if strings.Contains(scheme+authority, "{{") {
		return endpoint{}, errors.New("url: the scheme and host must be literal: templates are allowed only in the path and query")
	}
	// url.Parse errors quote the whole URL, which may hold a password.
	base, err := url.Parse(scheme + "://" + authority)
	if err != nil {
		return endpoint{}, fmt.Errorf("url: %w", unquote(err))
	}
	if base.Scheme != "http" && base.Scheme != "https" {
		return endpoint{}, fmt.Errorf("url: scheme %q: want http or https", base.Scheme)
	}
	if base.Hostname() == "" {
		return endpoint{}, errors.New("url: missing host")
	}
	t, err := tmpl.Parse(rest)
	if err != nil {
		return endpoint{}, fmt.Errorf("url: %w", err)
	}
	return endpoint{base: base, rest: t}, nil
}

// render builds the URL of one delivery and checks that the rendered path
// and query did not change where it goes.
func (e endpoint) render(data map[string]any) (*url.URL, error) {
	rest, err := e.rest.Render(data)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	u, err := url.Parse(e.base.String() + rest)
	if err != nil {
		return nil, fmt.Errorf("url: rendered path or query: %w", unquote(err))
	}
	if u.Scheme != e.base.Scheme || u.Host != e.base.Host || u.User.String() != e.base.User.String() {
		return nil, errors.New("url: the rendered path or query changed the scheme or host")
	}
	return u, nil
}

// literalSecrets lists the values in the URL as written that look like
// credentials: the password, each path segment, query value or username
// as long as a token (Discord-style `/webhooks/123/<token>`), and query
// values with a credential's name. Plain values such as `?app=live` are
// left out: the Redactor scrubs every text the daemon shows, and "live"
// would vanish from all of it.
func (e endpoint) literalSecrets() []string {
	var out []string
	if u := e.base.User; u != nil {
		if p, ok := u.Password(); ok {
			out = append(out, p)
		}
		if len(u.Username()) >= minSecretLen {
			out = append(out, u.Username())
		}
	}
	src := e.rest.Source()
	path, query, _ := strings.Cut(src, "?")
	for _, seg := range strings.Split(path, "/") {
		if len(seg) >= minSecretLen && !strings.Contains(seg, "{{") && !strings.Contains(seg, "}}") {
			out = append(out, seg)
		}
	}
	if query == "" {
		return out
	}
	for _, pair := range strings.Split(query, "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(v, "{{") || strings.Contains(v, "}}") {
			continue
		}
		if len(v) < minSecretLen && !sensitiveName(k) {
			continue
		}
		out = append(out, v)
		if dv, err := url.QueryUnescape(v); err == nil && dv != v {
			out = append(out, dv)
		}
	}
	return out
}

// minSecretLen is the length from which a literal query value is taken to
// be a credential whatever its name: tokens are long, words are short.
const minSecretLen = 16

// unquote drops the URL that a *url.Error quotes, keeping only the reason.
func unquote(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
