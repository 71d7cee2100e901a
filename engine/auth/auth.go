// Package auth decides whether a callback may be taken: the per-source
// policy of the rules file (enabled, CIDR allow-list) and its credential
// check: Aliyun Live's ALI-LIVE-SIGNATURE, a bearer token or a Standard
// Webhooks signature. rules builds policies when it loads; intake applies
// them to each request before the body is decoded.
//
// It is also the one home of each signature scheme's signing half
// (AliyunSignature, WebhookKey, WebhookSignature): `livehook send` signs
// test callbacks with them, and the webhook action signs its deliveries,
// so what livehook sends is what it verifies.
package auth

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxSkew is how far a signed timestamp may be from the daemon's
// clock when a source does not say: wide enough for clock drift and
// Aliyun's retries, narrow enough that a captured callback soon expires.
const DefaultMaxSkew = 5 * time.Minute

// Policy is what one `sources:` entry asks of a request.
type Policy struct {
	Enabled    bool
	Verifier   Verifier       // nil: no credential is asked for
	AllowCIDRs []netip.Prefix // empty: any client
}

// Allows reports whether a client at ip may call this source.
func (p *Policy) Allows(ip netip.Addr) bool {
	if len(p.AllowCIDRs) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, c := range p.AllowCIDRs {
		if c.Contains(ip) {
			return true
		}
	}
	return false
}

// Verifier checks one request's credentials.
type Verifier interface {
	// Method names the scheme for reports: aliyun_signature, bearer or
	// standard_webhooks.
	Method() string
	// BodySigned reports whether Verify needs the body. If not, intake
	// verifies before reading it.
	BodySigned() bool
	// Verify returns nil or a *Failure.
	Verify(h http.Header, body []byte, now time.Time) error
}

// Failure says why a request was refused. Reason is a short stable word
// for metrics and logs; Msg is what the caller is told, and never says
// anything about the expected credential.
type Failure struct {
	Reason string
	Msg    string
}

func (f *Failure) Error() string { return f.Msg }

func fail(reason, format string, args ...any) error {
	return &Failure{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Failure reasons.
const (
	ReasonMissing   = "missing"       // no credential headers
	ReasonMalformed = "malformed"     // headers present but not in the scheme's form
	ReasonMismatch  = "mismatch"      // no configured key or token matches
	ReasonTimestamp = "bad_timestamp" // the timestamp header is not Unix seconds
	ReasonExpired   = "expired"       // correctly signed, but outside the allowed skew: a replay or a wrong clock
)

// ParsePrefix reads a CIDR (10.0.0.0/8, 2001:db8::/32) or a single
// address, which stands for itself alone.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", s)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or a CIDR such as 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// timestamp parses a header holding Unix seconds and checks it lies within
// maxSkew of now, either way: clocks drift both ways, and a timestamp in
// the future would otherwise extend a replay window.
func timestamp(name, v string, now time.Time, maxSkew time.Duration) error {
	if v == "" || len(v) > 12 || strings.Trim(v, "0123456789") != "" {
		return fail(ReasonTimestamp, "%s: want Unix seconds", name)
	}
	ts, _ := strconv.ParseInt(v, 10, 64) // at most 12 digits: cannot fail
	skew := now.Sub(time.Unix(ts, 0))
	if skew > maxSkew || skew < -maxSkew {
		return fail(ReasonExpired, "%s is more than %s away from the server's clock", name, maxSkew)
	}
	return nil
}
