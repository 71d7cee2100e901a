package intake

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/livehook/livehook/engine/auth"
)

// Policies gives a source's admission policy from the current rules;
// ok false means the rules say nothing and the source is open. It is read
// on every request, so a reload applies to the next one.
type Policies interface {
	Source(name string) (p *auth.Policy, ok bool)
}

// allowed applies the source's policy before the body is read: enabled,
// client address, and a credential that does not sign the body. A refused
// request's body is never read.
func (h *handler) allowed(w http.ResponseWriter, r *http.Request, source string, g *gate) bool {
	if h.opts.Policies == nil {
		return true
	}
	p, ok := h.opts.Policies.Source(source)
	if !ok {
		return true
	}
	g.policy = p
	if !p.Enabled {
		// 404, as for a name that does not exist: with `default: {enabled:
		// false}` a scanner learns nothing about which sources do.
		h.refuse(w, source, "disabled", http.StatusNotFound, "not found: source "+source+" is not enabled")
		return false
	}
	if !p.Allows(g.ip) {
		h.authFailed(w, source, *g, &auth.Failure{Reason: "ip_not_allowed", Msg: "forbidden: your address may not send to this source"}, http.StatusForbidden)
		return false
	}
	if v := p.Verifier; v != nil && !v.BodySigned() {
		if err := v.Verify(r.Header, nil, h.opts.Now()); err != nil {
			h.authFailed(w, source, *g, err, http.StatusUnauthorized)
			return false
		}
	}
	return true
}

// verifyBody checks a credential that signs the body, once it is read and
// before it is decoded.
func (h *handler) verifyBody(w http.ResponseWriter, r *http.Request, source string, g gate, body []byte) bool {
	v := g.verifier()
	if v == nil || !v.BodySigned() {
		return true
	}
	if err := v.Verify(r.Header, body, h.opts.Now()); err != nil {
		h.authFailed(w, source, g, err, http.StatusUnauthorized)
		return false
	}
	return true
}

// authFailed refuses a request that failed authentication and counts it by
// reason. The log says why, but a flood of forged requests must not fill
// the disk: one line per source and reason every authLogEvery, with the
// number held back since the last one.
func (h *handler) authFailed(w http.ResponseWriter, source string, g gate, err error, status int) {
	reason := "invalid"
	var f *auth.Failure
	if errors.As(err, &f) {
		reason = f.Reason
	}
	label := h.sources.label(source)
	h.authFailures.WithLabelValues(label, reason).Inc()
	if n, ok := h.authLog.admit(label+"\x00"+reason, h.opts.Now()); ok {
		h.opts.Logger.Warn("callback refused: authentication failed", "source", source, "reason", reason,
			"client", g.ip.String(), "err", err.Error(), "similar_refusals_not_logged", n)
	}
	if v := g.verifier(); status == http.StatusUnauthorized && v != nil && v.Method() == "bearer" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="livehook"`)
	}
	h.refuse(w, source, "unauthorized", status, err.Error())
}

const authLogEvery = 10 * time.Second

// logLimiter lets one log line per key through every authLogEvery. Keys
// are metric label pairs, so they are bounded.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// admit reports whether to log now, and how many were held back before.
func (l *logLimiter) admit(key string, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	if t, seen := l.last[key]; seen && now.Sub(t) < authLogEvery {
		l.held[key]++
		return 0, false
	}
	n := l.held[key]
	l.last[key], l.held[key] = now, 0
	return n, true
}
