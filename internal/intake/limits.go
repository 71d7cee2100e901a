package intake

import (
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/livehook/livehook/engine/auth"
)

// Limits keep any one client, or all of them together, from exhausting
// the daemon. The zero value limits nothing but the body size.
type Limits struct {
	// MaxConcurrent caps requests being handled at once; beyond it the
	// answer is 503 with Retry-After. 0 means no cap.
	MaxConcurrent int
	// RatePerIP is the sustained requests per second one client IP may
	// make, with bursts of RateBurst; beyond it the answer is 429. 0 means
	// no per-IP limit.
	RatePerIP float64
	RateBurst int
	// TrustedProxies are the peers whose X-Forwarded-For is believed: the
	// client is the right-most address in it that is not a trusted proxy.
	// From any other peer the header is ignored, as anyone can write it.
	TrustedProxies []netip.Prefix
}

// maxTrackedIPs bounds the per-IP rate limiter's memory: 2 generations of
// this many addresses, about 100 bytes each.
const maxTrackedIPs = 8192

// gate is what admit learnt about a request that may go on.
type gate struct {
	ip      netip.Addr
	policy  *auth.Policy // the source's, read once so a reload cannot split a request; nil if open
	release func()
}

func (g gate) verifier() auth.Verifier {
	if g.policy == nil {
		return nil
	}
	return g.policy.Verifier
}

// admit applies the limits and the source's policy to a request whose
// source is known, before its body is read. It answers the request itself
// and returns false when the request may not go on.
func (h *handler) admit(w http.ResponseWriter, r *http.Request, source string) (gate, bool) {
	g := gate{ip: h.clientIP(r), release: func() {}}
	if h.slots != nil {
		select {
		case h.slots <- struct{}{}:
			g.release = func() { <-h.slots }
		default:
			w.Header().Set("Retry-After", "1")
			h.refuse(w, source, "overloaded", http.StatusServiceUnavailable, "too many requests in progress; retry later")
			return g, false
		}
	}
	if h.perIP != nil {
		if ok, wait := h.perIP.allow(g.ip, h.opts.Now()); !ok {
			g.release()
			w.Header().Set("Retry-After", strconv.Itoa(wait))
			h.refuse(w, source, "rate_limited", http.StatusTooManyRequests, "too many requests from your address; retry later")
			return g, false
		}
	}
	if !h.allowed(w, r, source, &g) {
		g.release()
		return g, false
	}
	return g, true
}

// clientIP is the direct peer, or the client a trusted proxy names.
func (h *handler) clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if !h.trusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			return ip // garbage: the last address a trusted proxy vouched for stands
		}
		if !h.trusted(a) {
			return a
		}
		ip = a
	}
	return ip
}

func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func (h *handler) trusted(ip netip.Addr) bool {
	for _, p := range h.opts.Limits.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// readFailed answers a body that could not be read: too large (413), too
// slow (408: the server's read timeout cut a trickling client off), or
// broken off (400).
func (h *handler) readFailed(w http.ResponseWriter, source string, err error) {
	var tooBig *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig):
		h.refuse(w, source, "too_large", http.StatusRequestEntityTooLarge, "body too large: the limit is "+byteSize(h.opts.MaxBody))
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		w.Header().Set("Connection", "close")
		h.refuse(w, source, "timeout", http.StatusRequestTimeout, "the body did not arrive in time")
	default:
		h.refuse(w, source, "read_error", http.StatusBadRequest, "could not read the body: "+err.Error())
	}
}

// ipLimiter is a token bucket per client address. Its memory is bounded
// by two generations of addresses: when the current one fills up it
// becomes the previous one, and addresses seen in neither are forgotten.
// An address is forgotten only after maxTrackedIPs others came since, when
// a per-IP limit could not stop the flood anyway; the concurrency cap does.
type ipLimiter struct {
	mu       sync.Mutex
	limit    rate.Limit
	burst    int
	cur, old map[netip.Addr]*rate.Limiter
}

func newIPLimiter(perSecond float64, burst int) *ipLimiter {
	if burst < 1 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &ipLimiter{limit: rate.Limit(perSecond), burst: burst, cur: map[netip.Addr]*rate.Limiter{}}
}

// allow takes a token for ip, or says how many seconds to wait for one.
func (l *ipLimiter) allow(ip netip.Addr, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.cur[ip]
	if !ok {
		if lim, ok = l.old[ip]; !ok {
			lim = rate.NewLimiter(l.limit, l.burst)
		}
		if len(l.cur) >= maxTrackedIPs {
			l.old, l.cur = l.cur, make(map[netip.Addr]*rate.Limiter, maxTrackedIPs)
		}
		l.cur[ip] = lim
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, max(1, int(math.Ceil(1/float64(l.limit))))
}
