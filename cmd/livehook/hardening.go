package main

import (
	"cmp"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/internal/admin"
	"github.com/livehook/livehook/internal/intake"
)

// hardeningConfig is what `serve` takes to face the internet: request
// limits, TLS for the callback listener, and the admin token.
type hardeningConfig struct {
	maxBody           byteSize
	maxConcurrent     int
	rateLimit         float64
	rateBurst         int
	trustedProxies    prefixList
	readTimeout       time.Duration
	readHeaderTimeout time.Duration
	tlsCert, tlsKey   string
	adminToken        string
	adminReadOnly     bool
}

// Timeouts of the callback listener when not set. Aliyun sends a few
// hundred bytes and waits at most about 5 s for the answer.
const (
	defaultReadTimeout       = 10 * time.Second
	defaultReadHeaderTimeout = 5 * time.Second
)

func (h *hardeningConfig) flags(fs *flag.FlagSet) {
	h.maxBody = intake.DefaultMaxBody
	fs.Var(&h.maxBody, "max-body", "largest callback body, a `SIZE` such as 65536, 64KiB or 1MiB; larger ones get 413 (env LIVEHOOK_MAX_BODY)")
	fs.IntVar(&h.maxConcurrent, "max-concurrent", 1024, "callback requests handled at once; beyond it 503 with Retry-After; 0 for no cap (env LIVEHOOK_MAX_CONCURRENT)")
	fs.Float64Var(&h.rateLimit, "rate-limit", 0, "requests per second one client IP may sustain; beyond it 429; 0 for no limit (env LIVEHOOK_RATE_LIMIT)")
	fs.IntVar(&h.rateBurst, "rate-burst", 20, "requests one client IP may send at once above --rate-limit (env LIVEHOOK_RATE_BURST)")
	fs.Var(&h.trustedProxies, "trusted-proxies", "comma-separated `CIDRS` of reverse proxies whose X-Forwarded-For names the client; from any other peer the header is ignored (env LIVEHOOK_TRUSTED_PROXIES)")
	fs.DurationVar(&h.readTimeout, "read-timeout", defaultReadTimeout, "a callback request, body included, must arrive within this; slower clients are cut off (env LIVEHOOK_READ_TIMEOUT)")
	fs.DurationVar(&h.readHeaderTimeout, "read-header-timeout", defaultReadHeaderTimeout, "the request headers, and the TLS handshake, must arrive within this (env LIVEHOOK_READ_HEADER_TIMEOUT)")
	fs.StringVar(&h.tlsCert, "tls-cert", "", "certificate `FILE` (PEM, chain included) to serve callbacks over HTTPS; re-read when it changes (env LIVEHOOK_TLS_CERT)")
	fs.StringVar(&h.tlsKey, "tls-key", "", "private key `FILE` (PEM) for --tls-cert (env LIVEHOOK_TLS_KEY)")
	fs.StringVar(&h.adminToken, "admin-token", "", "bearer `TOKEN` the admin endpoints require, except /healthz and /readyz; required when --admin is not a loopback address. Prefer the variable to the flag, which other users can see in ps (env LIVEHOOK_ADMIN_TOKEN)")
	fs.BoolVar(&h.adminReadOnly, "admin-read-only", false, "the admin listener and the console show everything but refuse reload, replays and reconcile with 403 (env LIVEHOOK_ADMIN_READ_ONLY)")
}

// minAdminToken keeps an admin token from being guessable.
const minAdminToken = 16

// hardening is a checked hardeningConfig, ready to apply.
type hardening struct {
	cfg   hardeningConfig
	certs *certReloader // nil without TLS
}

// prepare checks the settings against the admin address and loads the
// certificate, so a daemon that would be exposed refuses to start. Zero
// sizes and timeouts take their defaults.
func (h hardeningConfig) prepare(adminAddr string, log *slog.Logger) (*hardening, error) {
	h.maxBody = cmp.Or(h.maxBody, intake.DefaultMaxBody)
	h.readTimeout = cmp.Or(h.readTimeout, defaultReadTimeout)
	h.readHeaderTimeout = cmp.Or(h.readHeaderTimeout, defaultReadHeaderTimeout)
	switch {
	case h.maxConcurrent < 0 || h.rateLimit < 0 || h.rateBurst < 0 || h.maxBody < 0:
		return nil, errors.New("--max-body, --max-concurrent, --rate-limit and --rate-burst cannot be negative")
	case h.maxBody > maxBodyLimit:
		// The journal takes records up to 16 MiB, and re-encoding a body
		// as JSON can grow it sixfold (`<` becomes \u003c): past this a
		// callback could never be stored, and would get 503 forever.
		return nil, fmt.Errorf("--max-body %d is over the limit of %d (1MiB)", h.maxBody, maxBodyLimit)
	case h.readTimeout < 0 || h.readHeaderTimeout < 0:
		return nil, errors.New("--read-timeout and --read-header-timeout cannot be negative")
	case (h.tlsCert == "") != (h.tlsKey == ""):
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	case h.adminToken != "" && len(h.adminToken) < minAdminToken:
		return nil, fmt.Errorf("--admin-token: want at least %d characters", minAdminToken)
	case h.adminToken == "" && !loopback(adminAddr):
		return nil, fmt.Errorf("--admin %s is not a loopback address: anyone who reaches it could reload rules and read events. "+
			"Set LIVEHOOK_ADMIN_TOKEN (or --admin-token) so the admin endpoints require \"Authorization: Bearer <token>\", "+
			"or bind --admin to 127.0.0.1", adminAddr)
	}
	out := &hardening{cfg: h}
	if h.tlsCert != "" {
		c, err := newCertReloader(h.tlsCert, h.tlsKey, log)
		if err != nil {
			return nil, err
		}
		out.certs = c
	}
	return out, nil
}

// loopback reports whether addr binds loopback only. A host name other
// than localhost may resolve anywhere, so it counts as exposed.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// listener serves l over TLS when a certificate is configured.
func (h *hardening) listener(l net.Listener) net.Listener {
	if h.certs == nil {
		return l
	}
	return tls.NewListener(l, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: h.certs.GetCertificate})
}

func (h *hardening) intakeLimits() intake.Limits {
	return intake.Limits{MaxConcurrent: h.cfg.maxConcurrent, RatePerIP: h.cfg.rateLimit,
		RateBurst: h.cfg.rateBurst, TrustedProxies: h.cfg.trustedProxies}
}

// adminHandler requires the admin token, when there is one.
func (h *hardening) adminHandler(next http.Handler) http.Handler {
	if h.cfg.adminToken == "" {
		return next
	}
	return admin.RequireToken(next, h.cfg.adminToken)
}

// maxBodyLimit is the largest --max-body livehook can store safely.
const maxBodyLimit = 1 << 20

// byteSize is a flag holding a size: 65536, 64KiB, 64K, 1MiB or 1M.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}} {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return fmt.Errorf("want a positive size such as 65536, 64KiB or 1MiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// prefixList is a flag holding comma-separated CIDRs or addresses.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	var s []string
	for _, x := range *p {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(s string) error {
	*p = nil
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		x, err := auth.ParsePrefix(f)
		if err != nil {
			return err
		}
		*p = append(*p, x)
	}
	return nil
}

// warnUnsigned says at start which sources whose senders sign their
// callbacks are taken without a signature: fine for a first try, not on
// the internet.
func (h *hardening) warnUnsigned(log *slog.Logger, policies intake.Policies) {
	for _, s := range sourceapi.Default().All() {
		if s.Auth == "" || s.Family() {
			continue
		}
		if p, ok := policies.Source(s.Name); ok && (!p.Enabled || p.Verifier != nil) {
			continue
		}
		log.Warn(s.Doc + " are accepted without a signature: set sources: " + s.Name +
			": auth: in the rules (README: Securing the callback port)")
	}
}
