package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/internal/intake"
)

// policySet is a reloadable set of source policies, as the engine's rules
// give them.
type policySet struct {
	m atomic.Pointer[map[string]*auth.Policy]
}

func newPolicies(m map[string]*auth.Policy) *policySet {
	p := &policySet{}
	p.m.Store(&m)
	return p
}

func (p *policySet) Source(name string) (*auth.Policy, bool) {
	pol, ok := (*p.m.Load())[name]
	return pol, ok
}

// countingAcceptor counts accepted events and can hold them in Accept.
type countingAcceptor struct {
	n     atomic.Int64
	hold  chan struct{} // when set, Accept waits for it to close
	entry chan struct{} // when set, Accept signals here on entry
}

func (a *countingAcceptor) Accept(_ context.Context, _ *event.Event, _ string) (string, error) {
	if a.entry != nil {
		a.entry <- struct{}{}
	}
	if a.hold != nil {
		<-a.hold
	}
	return "id-" + strconv.FormatInt(a.n.Add(1), 10), nil
}

// readCounter is a request body that counts the bytes read from it, to
// show that a refused request's body was never read.
type readCounter struct {
	r io.Reader
	n atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type harness struct {
	h   http.Handler
	acc *countingAcceptor
	reg *prometheus.Registry
	log *bytes.Buffer
	mu  *sync.Mutex
	now *atomic.Pointer[time.Time]
}

func newHarness(t *testing.T, pol intake.Policies, lim intake.Limits) *harness {
	t.Helper()
	now := &atomic.Pointer[time.Time]{}
	start := time.Unix(1714564800, 0)
	now.Store(&start)
	hs := &harness{acc: &countingAcceptor{}, reg: prometheus.NewRegistry(), log: &bytes.Buffer{}, mu: &sync.Mutex{}, now: now}
	hs.h = intake.New(intake.Options{
		Acceptor: hs.acc,
		Logger:   slog.New(slog.NewJSONHandler(lockedWriter{hs.mu, hs.log}, nil)),
		Metrics:  hs.reg,
		Now:      func() time.Time { return *now.Load() },
		Policies: pol,
		Limits:   lim,
	})
	return hs
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (hs *harness) advance(d time.Duration) {
	t := hs.now.Load().Add(d)
	hs.now.Store(&t)
}

// post sends body from remote with headers and returns the recorder and
// how many body bytes the handler read.
func (hs *harness) post(path, remote, body string, headers map[string]string) (*httptest.ResponseRecorder, int64) {
	rc := &readCounter{r: strings.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, path, rc)
	req.RemoteAddr = remote
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	hs.h.ServeHTTP(rec, req)
	return rec, rc.n.Load()
}

func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var m struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("reply is not JSON: %q", rec.Body.String())
	}
	return m.Error
}

const (
	recordBody = `{"domain":"play.example.com","app":"live","stream":"room42","event":"record_started"}`
	notifyKey  = "0123456789abcdefKEY"
	oldKey     = "OLDkey0123456789"
	cbHost     = "hooks.example.com"
	peer       = "198.51.100.7:40000"
)

func aliyunPolicies() *policySet {
	return newPolicies(map[string]*auth.Policy{event.SourceRecord: {
		Enabled:  true,
		Verifier: auth.NewAliyun([]secret.Secret{secret.New(notifyKey), secret.New(oldKey)}, cbHost, 5*time.Minute),
	}})
}

func signed(ts time.Time, key string) map[string]string {
	s := strconv.FormatInt(ts.Unix(), 10)
	return map[string]string{auth.HeaderAliTimestamp: s, auth.HeaderAliSignature: auth.AliyunSignature(cbHost, s, key)}
}

// TestAliyunSignatureAtIntake: a callback without a valid signature is
// refused before its body is read, counted by reason, logged, and never
// reaches the acceptor.
func TestAliyunSignatureAtIntake(t *testing.T) {
	start := time.Unix(1714564800, 0)
	tests := []struct {
		name    string
		headers map[string]string
		later   time.Duration // how long after signing it arrives
		status  int
		reason  string
	}{
		{name: "valid", headers: signed(start, notifyKey), status: 200},
		{name: "old key during a rotation", headers: signed(start, oldKey), status: 200},
		{name: "captured and replayed within the window", headers: signed(start, notifyKey), later: 4 * time.Minute, status: 200},
		{name: "no headers", headers: nil, status: 401, reason: auth.ReasonMissing},
		{name: "wrong key", headers: signed(start, "guessed-key-000000"), status: 401, reason: auth.ReasonMismatch},
		{name: "malformed", headers: map[string]string{auth.HeaderAliTimestamp: "1714564800", auth.HeaderAliSignature: "nope"}, status: 401, reason: auth.ReasonMalformed},
		{name: "replayed after the window", headers: signed(start, notifyKey), later: 6 * time.Minute, status: 401, reason: auth.ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, aliyunPolicies(), intake.Limits{})
			hs.advance(tt.later)
			rec, read := hs.post("/callbacks/record", peer, recordBody, tt.headers)
			if rec.Code != tt.status {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.status == 200 {
				if hs.acc.n.Load() != 1 {
					t.Errorf("accepted %d events, want 1", hs.acc.n.Load())
				}
				return
			}
			if hs.acc.n.Load() != 0 || read != 0 {
				t.Errorf("refused request: %d events accepted, %d body bytes read; want none", hs.acc.n.Load(), read)
			}
			if msg := errorOf(t, rec); strings.Contains(msg, notifyKey) || msg == "" {
				t.Errorf("error %q", msg)
			}
			want := "\n# HELP livehook_auth_failures_total Requests refused for their credentials or address, by source and reason.\n# TYPE livehook_auth_failures_total counter\n" +
				`livehook_auth_failures_total{reason="` + tt.reason + `",source="aliyun_live_record"} 1` + "\n"
			if err := testutil.GatherAndCompare(hs.reg, strings.NewReader(want), "livehook_auth_failures_total"); err != nil {
				t.Error(err)
			}
			if !strings.Contains(hs.log.String(), `"reason":"`+tt.reason+`"`) || !strings.Contains(hs.log.String(), `"client":"198.51.100.7"`) {
				t.Errorf("log does not give the reason and client:\n%s", hs.log)
			}
		})
	}
}

func TestBearerAtIntake(t *testing.T) {
	pol := newPolicies(map[string]*auth.Policy{"jobs": {Enabled: true, Verifier: auth.NewBearer([]secret.Secret{secret.New("tok-123456")})}})
	hs := newHarness(t, pol, intake.Limits{})
	rec, read := hs.post("/events/jobs", peer, `{"job":"done"}`, map[string]string{"Authorization": "Bearer wrong-token"})
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="livehook"` || read != 0 {
		t.Errorf("wrong token: %d %q WWW-Authenticate %q, %d bytes read", rec.Code, rec.Body, rec.Header().Get("WWW-Authenticate"), read)
	}
	rec, _ = hs.post("/events/jobs", peer, `{"job":"done"}`, map[string]string{"Authorization": "Bearer tok-123456"})
	if rec.Code != 200 {
		t.Errorf("right token: %d %s", rec.Code, rec.Body)
	}
	// Other sources are not affected.
	if rec, _ = hs.post("/events/other", peer, `{}`, nil); rec.Code != 200 {
		t.Errorf("unconfigured source: %d %s", rec.Code, rec.Body)
	}
	if hs.acc.n.Load() != 2 {
		t.Errorf("accepted %d, want 2", hs.acc.n.Load())
	}
}

func TestStandardWebhooksAtIntake(t *testing.T) {
	key, _ := auth.WebhookKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	pol := newPolicies(map[string]*auth.Policy{"ci": {Enabled: true, Verifier: auth.NewStandardWebhooks([][]byte{key}, 5*time.Minute)}})
	body := `{"job":"done"}`
	headers := func(body string) map[string]string {
		return map[string]string{"webhook-id": "msg_1", "webhook-timestamp": "1714564800",
			"webhook-signature": auth.WebhookSignature(key, "msg_1", "1714564800", []byte(body))}
	}
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		status  int
	}{
		{"signed", body, headers(body), 200},
		{"body changed after signing", `{"job":"undone"}`, headers(body), 401},
		{"unsigned", body, nil, 401},
		{"signed but not JSON", `not json`, headers(`not json`), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, pol, intake.Limits{})
			rec, _ := hs.post("/events/ci", peer, tt.body, tt.headers)
			if rec.Code != tt.status {
				t.Errorf("status %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if want := int64(0); tt.status != 200 && hs.acc.n.Load() != want {
				t.Errorf("accepted a refused request")
			}
		})
	}
}

func TestDisabledSource(t *testing.T) {
	pol := newPolicies(map[string]*auth.Policy{"old": {Enabled: false}, event.SourceRecord: {Enabled: false}})
	hs := newHarness(t, pol, intake.Limits{})
	for _, path := range []string{"/events/old", "/callbacks/record"} {
		rec, read := hs.post(path, peer, recordBody, nil)
		if rec.Code != 404 || !strings.Contains(errorOf(t, rec), "not enabled") || read != 0 {
			t.Errorf("%s: %d %s (%d bytes read), want 404 without reading", path, rec.Code, rec.Body, read)
		}
	}
	if hs.acc.n.Load() != 0 {
		t.Error("a disabled source's event was accepted")
	}
}

// TestPolicyFollowsReload: the policy is read per request, so a reload
// applies to the next one.
func TestPolicyFollowsReload(t *testing.T) {
	pol := newPolicies(map[string]*auth.Policy{})
	hs := newHarness(t, pol, intake.Limits{})
	if rec, _ := hs.post("/callbacks/record", peer, recordBody, nil); rec.Code != 200 {
		t.Fatalf("open source: %d", rec.Code)
	}
	pol.m.Store(aliyunPolicies().m.Load())
	if rec, _ := hs.post("/callbacks/record", peer, recordBody, nil); rec.Code != 401 {
		t.Fatalf("after the reload an unsigned callback got %d, want 401", rec.Code)
	}
}

func mustPrefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := auth.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestClientAddress: allow_cidrs judges the client, which is the direct
// peer unless that peer is a trusted proxy; only then X-Forwarded-For.
func TestClientAddress(t *testing.T) {
	pol := newPolicies(map[string]*auth.Policy{"cams": {Enabled: true, AllowCIDRs: mustPrefixes(t, "203.0.113.0/24")}})
	lim := intake.Limits{TrustedProxies: mustPrefixes(t, "10.0.0.0/8")}
	tests := []struct {
		name   string
		remote string
		xff    string
		status int
	}{
		{"allowed peer", "203.0.113.9:5000", "", 200},
		{"allowed peer over IPv4-in-IPv6", "[::ffff:203.0.113.9]:5000", "", 200},
		{"other peer", "198.51.100.7:5000", "", 403},
		{"untrusted peer cannot claim an address", "198.51.100.7:5000", "203.0.113.9", 403},
		{"trusted proxy names an allowed client", "10.1.1.1:5000", "203.0.113.9", 200},
		{"trusted proxy names another client", "10.1.1.1:5000", "198.51.100.7", 403},
		{"a forged left-most entry is ignored", "10.1.1.1:5000", "203.0.113.9, 198.51.100.7", 403},
		{"proxy chain: right-most untrusted hop", "10.1.1.1:5000", "198.51.100.7, 203.0.113.9, 10.2.2.2", 200},
		{"garbage hop stops the walk at the proxy", "10.1.1.1:5000", "203.0.113.9, not-an-ip", 403},
		{"hop with a port", "10.1.1.1:5000", "203.0.113.9:1234", 200},
		{"proxy without the header is the client", "10.1.1.1:5000", "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, pol, lim)
			h := map[string]string{}
			if tt.xff != "" {
				h["X-Forwarded-For"] = tt.xff
			}
			rec, read := hs.post("/events/cams", tt.remote, `{}`, h)
			if rec.Code != tt.status {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.status == 403 && (read != 0 || !strings.Contains(hs.log.String(), `"reason":"ip_not_allowed"`)) {
				t.Errorf("refused: %d bytes read; log:\n%s", read, hs.log)
			}
		})
	}
	t.Run("two headers", func(t *testing.T) {
		hs := newHarness(t, pol, lim)
		req := httptest.NewRequest(http.MethodPost, "/events/cams", strings.NewReader(`{}`))
		req.RemoteAddr = "10.1.1.1:5000"
		req.Header.Add("X-Forwarded-For", "198.51.100.7")
		req.Header.Add("X-Forwarded-For", "203.0.113.9")
		rec := httptest.NewRecorder()
		hs.h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("status %d, want 200: the last header holds the nearest hop", rec.Code)
		}
	})
}

// TestAuthFailureLogIsThrottled: a flood of forged callbacks is counted in
// full but logged once per source and reason every 10 s.
func TestAuthFailureLogIsThrottled(t *testing.T) {
	hs := newHarness(t, aliyunPolicies(), intake.Limits{})
	for range 50 {
		hs.post("/callbacks/record", peer, recordBody, nil)
	}
	hs.advance(11 * time.Second)
	hs.post("/callbacks/record", peer, recordBody, nil)
	lines := strings.Count(hs.log.String(), "authentication failed")
	if lines != 2 || !strings.Contains(hs.log.String(), `"similar_refusals_not_logged":49`) {
		t.Errorf("%d log lines, want 2, the second counting 49 held back:\n%s", lines, hs.log)
	}
	want := "\n# HELP livehook_auth_failures_total Requests refused for their credentials or address, by source and reason.\n# TYPE livehook_auth_failures_total counter\n" +
		`livehook_auth_failures_total{reason="missing",source="aliyun_live_record"} 51` + "\n"
	if err := testutil.GatherAndCompare(hs.reg, strings.NewReader(want), "livehook_auth_failures_total"); err != nil {
		t.Error(err)
	}
}
