package secret

import (
	"net/url"
	"strings"
)

// ParseURL parses raw, a URL that is a credential in whole or in part
// (a chat robot's webhook), and reports whether it is an absolute http or
// https URL with a host. It gives no error text: url.Parse's would quote
// raw, so the caller says what it wanted instead.
func ParseURL(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, false
	}
	return u, true
}

// RedactedURL is u as it may be shown: the userinfo and every query value
// read ****, so `?access_token=abc` reads `?access_token=****`; the path
// is kept.
func RedactedURL(u *url.URL) string {
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	if u.User != nil {
		b.WriteString(Redacted + "@")
	}
	b.WriteString(u.Host)
	b.WriteString(u.EscapedPath())
	if u.RawQuery != "" {
		pairs := strings.Split(u.RawQuery, "&")
		for i, p := range pairs {
			if k, _, ok := strings.Cut(p, "="); ok {
				pairs[i] = k + "=" + Redacted
			}
		}
		b.WriteString("?" + strings.Join(pairs, "&"))
	}
	return b.String()
}

// URLHider keeps a credential URL out of text. net/http quotes the whole
// URL in its errors, so every text a delivery reports passes through Hide.
type URLHider struct {
	whole *strings.Replacer // the URL as written and as net/http prints it
	parts Redactor          // its secret parts, should one appear alone
}

// NewURLHider hides u, parsed from raw: the whole URL, as written or as
// net/http prints it, reads as shown; each secret part, should it appear
// alone, reads as ****. The secret parts are the password, the query and
// each query value, and the values in more (Slack's token is its path; a
// robot's signing secret is not in the URL at all).
func NewURLHider(raw string, u *url.URL, shown string, more ...string) *URLHider {
	h := &URLHider{whole: strings.NewReplacer(raw, shown, u.String(), shown)}
	if p, ok := u.User.Password(); ok {
		h.parts.Add(p)
	}
	h.parts.Add(u.RawQuery)
	for _, vs := range u.Query() {
		h.parts.Add(vs...)
	}
	h.parts.Add(more...)
	return h
}

// Hide returns s with the URL and its secret parts replaced. It is safe
// for concurrent use.
func (h *URLHider) Hide(s string) string { return h.parts.Redact(h.whole.Replace(s)) }
