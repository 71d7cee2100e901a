package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/auth"
)

// do sends a request and returns the status and the reply's text.
func do(t *testing.T, method, url string, headers map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func aliHeaders(host, key string, at time.Time) map[string]string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return map[string]string{auth.HeaderAliTimestamp: ts, auth.HeaderAliSignature: auth.AliyunSignature(host, ts, key)}
}

const unsignedWarning = "recording callbacks are accepted without a signature: set sources: aliyun_live_record: auth: in the rules (README: Securing the callback port)"

const vodUnsignedWarning = "ApsaraVideo VOD event notifications are accepted without a signature: set sources: aliyun_vod: auth: in the rules (README: Securing the callback port)"

const (
	testNewKey = "NEWkey0123456789ab"
	testOldKey = "OLDkey0123456789ab"
)

func signedRules(keys ...string) string {
	src := "sources:\n  aliyun_live_record:\n    auth:\n      notify_auth_keys:\n"
	for _, k := range keys {
		src += "        - ${" + k + "}\n"
	}
	return src + `      callback_host: hooks.example.com
      max_skew: 5m
rules:
  - name: every-event
    do:
      - type: log
        with: { message: "callback from {{ .stream }}" }
`
}

// TestDaemonVerifiesAliyunSignature: only callbacks signed with a current
// key, for the configured host, within the window, run a rule; send signs
// them; a key rotation is a reload.
func TestDaemonVerifiesAliyunSignature(t *testing.T) {
	t.Setenv("LH_TEST_KEY_NEW", testNewKey)
	t.Setenv("LH_TEST_KEY_OLD", testOldKey)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, signedRules("LH_TEST_KEY_NEW", "LH_TEST_KEY_OLD"))
	d := startDaemonWith(t, serveConfig{rules: p})
	// Each callback names its own stream: identical ones within a second
	// would be answered as retries of the first.
	n := 0
	callback := func() (file, body string) {
		n++
		body = fmt.Sprintf(`{"domain":"play.example.com","app":"live","stream":"s%d","event":"record_error"}`, n)
		file = filepath.Join(t.TempDir(), "callback.json")
		writeFile(t, file, body)
		return file, body
	}
	url := d.url("/callbacks/record")
	if n := d.log.count(msgIs(unsignedWarning)); n != 0 {
		t.Errorf("warned about unsigned callbacks with a notify key set")
	}
	accepted := 0
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		status string
	}{
		{"send signs with the key from the environment", []string{"--host", "hooks.example.com"}, map[string]string{"LIVEHOOK_SEND_KEY": testNewKey}, "200 OK"},
		{"the old key during the rotation", []string{"--key", testOldKey, "--host", "hooks.example.com"}, nil, "200 OK"},
		{"unsigned", nil, nil, "401 Unauthorized"},
		{"signed for the wrong host", []string{"--key", testNewKey}, nil, "401 Unauthorized"}, // defaults to 127.0.0.1
		{"wrong key", []string{"--key", "guessed0123456789", "--host", "hooks.example.com"}, nil, "401 Unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, _ := callback()
			stdout, stderr, code := runCLI(t, tt.env, append(append([]string{"send", "--url", url}, tt.args...), ev)...)
			if !strings.HasPrefix(stdout, tt.status) {
				t.Fatalf("send: exit %d, %q %q; want %s", code, stdout, stderr, tt.status)
			}
			if tt.status == "200 OK" {
				accepted++
			}
		})
	}
	t.Run("replayed after the window", func(t *testing.T) {
		_, body := callback()
		status, reply := do(t, "POST", url, aliHeaders("hooks.example.com", testNewKey, time.Now().Add(-6*time.Minute)), body)
		if status != 401 || !strings.Contains(reply, "away from the server's clock") {
			t.Errorf("%d %s", status, reply)
		}
	})
	t.Run("rotation ends with a reload", func(t *testing.T) {
		writeFile(t, p, signedRules("LH_TEST_KEY_NEW"))
		if status, reply := do(t, "POST", d.admURL("/-/reload"), nil, ""); status != 200 {
			t.Fatalf("reload: %d %s", status, reply)
		}
		_, body := callback()
		if status, _ := do(t, "POST", url, aliHeaders("hooks.example.com", testOldKey, time.Now()), body); status != 401 {
			t.Errorf("old key after the rotation: %d, want 401", status)
		}
		if status, _ := do(t, "POST", url, aliHeaders("hooks.example.com", testNewKey, time.Now()), body); status != 200 {
			t.Errorf("new key after the rotation: %d, want 200", status)
		}
		accepted++
	})
	t.Run("a broken sources edit keeps the policy", func(t *testing.T) {
		writeFile(t, p, "sources:\n  aliyun_live_record:\n    auth:\n      notify_auth_key: ${LH_TEST_KEY_NEW}\n"+
			"      callback_host: https://hooks.example.com/callbacks/record\nrules:\n  - name: r\n    do: [{type: log}]\n")
		stdout, _, code := runCLI(t, map[string]string{"LH_TEST_KEY_NEW": testNewKey}, "check", p)
		if code != 1 || !strings.Contains(stdout, "rules.yaml:5:22: source \"aliyun_live_record\": auth: callback_host: want the host") {
			t.Errorf("check: exit %d, %s", code, stdout)
		}
		if status, reply := do(t, "POST", d.admURL("/-/reload"), nil, ""); status != http.StatusUnprocessableEntity || !strings.Contains(reply, "rules.yaml:5:22") {
			t.Errorf("reload: %d %s, want 422 naming rules.yaml:5:22", status, reply)
		}
		_, body := callback()
		if status, _ := do(t, "POST", url, nil, body); status != 401 {
			t.Errorf("after a failed reload an unsigned callback got %d, want 401 as before", status)
		}
	})
	_, metrics := do(t, "GET", d.admURL("/metrics"), nil, "")
	for _, want := range []string{
		`livehook_auth_failures_total{reason="missing",source="aliyun_live_record"} 2`,
		`livehook_auth_failures_total{reason="mismatch",source="aliyun_live_record"} 3`,
		`livehook_auth_failures_total{reason="expired",source="aliyun_live_record"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Drained, every accepted callback has been evaluated, and a refused
	// one that slipped through would have been too.
	d.waitDrained(t)
	if n := sumSeries(d.metrics(t), "livehook_rule_matches_total"); n != float64(accepted) {
		t.Errorf("%v rule matches for %d accepted callbacks: a refused one was processed", n, accepted)
	}
	// The README promises the refusals in the log, not only in the metric.
	if n := d.log.count(msgIs("callback refused: authentication failed")); n == 0 {
		t.Error("refusals were not logged")
	}
}

// TestDaemonVerifiesVODSignature: with a VOD private key set, only VOD
// events signed over the configured callback URL are taken; send signs as
// VOD does; the source shows how it is checked, its URL redacted.
func TestDaemonVerifiesVODSignature(t *testing.T) {
	const vodKey = "VODkey0123456789ab"
	const callbackURL = "https://hooks.example.com/callbacks/vod?tenant=t-secret-9876"
	t.Setenv("LH_TEST_VOD_KEY", vodKey)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, "sources:\n  aliyun_vod:\n    auth:\n      vod_private_key: ${LH_TEST_VOD_KEY}\n"+
		"      callback_url: "+callbackURL+"\nrules:\n  - name: every-event\n    do: [{type: log}]\n")
	d := startDaemonWith(t, serveConfig{rules: p})
	if n := d.log.count(msgIs(vodUnsignedWarning)); n != 0 {
		t.Errorf("warned about unsigned VOD events with a private key set")
	}
	// Each event names its own video: a video is added once, so the same
	// one again would be answered as a retry of the first.
	n := 0
	event := func() string {
		n++
		file := filepath.Join(t.TempDir(), "vod.json")
		writeFile(t, file, fmt.Sprintf(`{"EventTime":"2026-12-03T09:26:17Z","EventType":"AddLiveRecordVideoComplete","VideoId":"v%d","Status":"success","StreamName":"room42","DomainName":"play.example.com","AppName":"live"}`, n))
		return file
	}
	url := d.url("/callbacks/vod")
	accepted := 0
	for _, tt := range []struct {
		name   string
		args   []string
		env    map[string]string
		status string
	}{
		{"send signs over the callback URL with the key from the environment", []string{"--callback-url", callbackURL}, map[string]string{"LIVEHOOK_SEND_KEY": vodKey}, "200 OK"},
		{"unsigned", nil, nil, "401 Unauthorized"},
		{"signed over the URL it was sent to", []string{"--key", vodKey}, nil, "401 Unauthorized"},
		{"signed over the URL without its query", []string{"--key", vodKey, "--callback-url", "https://hooks.example.com/callbacks/vod"}, nil, "401 Unauthorized"},
		{"wrong key", []string{"--key", "guessed0123456789", "--callback-url", callbackURL}, nil, "401 Unauthorized"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, tt.env, append(append([]string{"send", "--url", url}, tt.args...), event())...)
			if !strings.HasPrefix(stdout, tt.status) {
				t.Fatalf("send: exit %d, %q %q; want %s", code, stdout, stderr, tt.status)
			}
			if tt.status == "200 OK" {
				accepted++
			}
		})
	}
	if _, stderr, code := runCLI(t, nil, "send", "--url", url, "--key", vodKey, "--host", "hooks.example.com", event()); code != 2 || !strings.Contains(stderr, "--host is for --key on Live callbacks") {
		t.Errorf("send --host to VOD: exit %d, %q; want 2 saying --host is for Live", code, stderr)
	}
	_, api := do(t, "GET", d.admURL("/api/rules"), nil, "")
	if !strings.Contains(api, `"auth": "vod_signature"`) || !strings.Contains(api, `"callback_url": "https://hooks.example.com/callbacks/vod?tenant=****"`) {
		t.Errorf("/api/rules does not show the VOD source as checked, its URL redacted:\n%s", api)
	}
	for _, secret := range []string{vodKey, "t-secret-9876"} {
		if strings.Contains(api, secret) {
			t.Errorf("/api/rules shows %q", secret)
		}
	}
	d.waitDrained(t)
	if m := sumSeries(d.metrics(t), "livehook_rule_matches_total"); m != float64(accepted) {
		t.Errorf("%v rule matches for %d accepted events: a refused one was processed", m, accepted)
	}
}

// TestDaemonSourcePolicies: with `default: {enabled: false}` only listed
// sources are taken, each with its own credential.
func TestDaemonSourcePolicies(t *testing.T) {
	t.Setenv("LH_TEST_JOBS_TOKEN", "jobs-token-0123456789")
	t.Setenv("LH_TEST_CI_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, `sources:
  default:
    enabled: false
  aliyun_live_record: {}
  jobs:
    auth:
      bearer_token: ${LH_TEST_JOBS_TOKEN}
  ci:
    auth:
      webhook_secret: ${LH_TEST_CI_SECRET}
rules:
  - name: every-event
    do: [{type: log}]
`)
	d := startDaemonWith(t, serveConfig{rules: p})
	ev := filepath.Join(t.TempDir(), "job.json")
	writeFile(t, ev, `{"job":"done"}`)
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		status string
	}{
		{"unlisted source", []string{"--url", d.url("/events/random")}, nil, "404"},
		{"recording callbacks stay open", []string{"--url", d.url("/callbacks/record"), filepath.Join("..", "..", "testdata", "events", "record_error.json")}, nil, "200"},
		{"bearer without a token", []string{"--url", d.url("/events/jobs")}, nil, "401"},
		{"bearer with the token", []string{"--url", d.url("/events/jobs")}, map[string]string{"LIVEHOOK_SEND_TOKEN": "jobs-token-0123456789"}, "200"},
		{"bearer with another token", []string{"--url", d.url("/events/jobs"), "--token", "jobs-token-9876543210"}, nil, "401"},
		{"standard webhooks signed", []string{"--url", d.url("/events/ci")}, map[string]string{"LIVEHOOK_SEND_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "200"},
		{"standard webhooks with another secret", []string{"--url", d.url("/events/ci"), "--webhook-secret", "whsec_c2VjcmV0LWJ1dC1ub3Qtb3Vycw"}, nil, "401"},
		{"standard webhooks unsigned", []string{"--url", d.url("/events/ci")}, nil, "401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"send"}, tt.args...)
			if !strings.HasSuffix(args[len(args)-1], ".json") {
				args = append(args, ev)
			}
			stdout, stderr, code := runCLI(t, tt.env, args...)
			if !strings.HasPrefix(stdout, tt.status) {
				t.Errorf("send: exit %d, %q %q; want %s", code, stdout, stderr, tt.status)
			}
		})
	}
	// A signed body that was changed on the way is refused.
	key, _ := auth.WebhookKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := map[string]string{"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": auth.WebhookSignature(key, "msg_1", ts, []byte(`{"job":"done"}`))}
	if status, reply := do(t, "POST", d.url("/events/ci"), h, `{"job":"undone"}`); status != 401 {
		t.Errorf("tampered body: %d %s", status, reply)
	}
	var rep struct {
		Sources []map[string]any `json:"sources"`
	}
	getJSON(t, d.admURL("/api/rules"), &rep)
	got := map[string]string{}
	for _, s := range rep.Sources {
		got[s["name"].(string)] = fmt.Sprint(s["enabled"], " ", s["auth"])
	}
	want := map[string]string{"default": "false none", "aliyun_live_record": "true none", "jobs": "true bearer", "ci": "true standard_webhooks"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("/api/rules sources = %v, want %v", got, want)
	}
}

// TestDaemonRefusesBadInput posts every kind of bad body to both
// endpoints; each gets its documented status, the daemon keeps serving and
// only the good requests are processed.
func TestDaemonRefusesBadInput(t *testing.T) {
	d := startDaemonWith(t, serveConfig{rules: filepath.Join("..", "..", "rules.example.yaml"),
		hardening: hardeningConfig{readTimeout: time.Second, readHeaderTimeout: time.Second}})
	for _, w := range []string{unsignedWarning, vodUnsignedWarning} {
		if n := d.log.count(msgIs(w)); n != 1 {
			t.Errorf("rules without sources: warned %d times %q, want once", n, w)
		}
	}
	const base = `"domain":"d","app":"a","stream":"s"`
	tests := []struct {
		name            string
		method          string
		body            string
		record, generic int // statuses on /callbacks/record and /events/{source}
		errHas          string
	}{
		{"empty body", "POST", "", 400, 400, "empty body"},
		{"not JSON", "POST", "domain=d&app=a", 400, 400, "not valid JSON"},
		{"JSON array", "POST", `[{` + base + `}]`, 400, 400, "JSON array"},
		{"JSON string", "POST", `"hello"`, 400, 400, "JSON string"},
		{"invalid UTF-8", "POST", "{" + base + ",\"uri\":\"a\xffb.flv\"}", 400, 400, "not valid UTF-8"},
		{"deeply nested", "POST", `{` + base + `,"x":` + strings.Repeat(`{"y":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, 400, 400, "nested deeper than 32"},
		{"too many keys", "POST", `{` + base + keys(1000) + `}`, 400, 400, "more than 1000 object keys"},
		{"huge body", "POST", `{"domain":"` + strings.Repeat("x", 70<<10) + `"}`, 413, 413, "too large"},
		{"duration as a word", "POST", `{` + base + `,"uri":"x.flv","duration":"long"}`, 400, 200, `"duration"`},
		{"start_time as an object", "POST", `{` + base + `,"start_time":{}}`, 400, 200, `"start_time"`},
		{"duplicate keys", "POST", `{` + base + `,"stream":"t"}`, 400, 400, `duplicate key "stream"`},
		{"number out of range", "POST", `{` + base + `,"x":1e999}`, 400, 400, "out of range"},
		{"wrong method", "GET", "", 405, 405, "not allowed"},
	}
	accepted := 0
	for _, tt := range tests {
		for _, ep := range []struct {
			path   string
			status int
		}{{"/callbacks/record", tt.record}, {"/events/cams", tt.generic}} {
			t.Run(tt.name+" "+ep.path, func(t *testing.T) {
				status, reply := do(t, tt.method, d.url(ep.path), nil, tt.body)
				if status != ep.status {
					t.Fatalf("%d %s, want %d", status, reply, ep.status)
				}
				if status == 200 {
					accepted++
					return
				}
				var r struct {
					OK    *bool  `json:"ok"`
					Error string `json:"error"`
				}
				if err := json.Unmarshal([]byte(reply), &r); err != nil || r.OK == nil || *r.OK || !strings.Contains(r.Error, tt.errHas) {
					t.Errorf("reply %s, want {ok: false} with an error containing %q", reply, tt.errHas)
				}
			})
		}
	}
	for _, path := range []string{"/callbacks/record", "/events/cams"} {
		t.Run("slow body "+path, func(t *testing.T) {
			c := dialRaw(t, d)
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n{", path)
			stop := trickle(c)
			defer close(stop)
			line := readStatusLine(t, c, 10*time.Second)
			if !strings.HasPrefix(line, "HTTP/1.1 408") {
				t.Errorf("status line %q, want 408", line)
			}
		})
	}
	t.Run("slow headers", func(t *testing.T) {
		c := dialRaw(t, d)
		fmt.Fprint(c, "POST /callbacks/record HTTP/1.1\r\n")
		stop := trickle(c)
		defer close(stop)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		// The server hangs up: a clean close, or a reset when a trickled
		// byte was still unread; the read deadline is not either.
		_, err := io.ReadAll(c)
		if (err != nil && !errors.Is(err, syscall.ECONNRESET)) || time.Since(start) > 9*time.Second {
			t.Errorf("a client trickling its headers was not cut off: %v after %v", err, time.Since(start))
		}
	})
	for _, path := range []string{"/callbacks/record", "/events/cams"} {
		status, reply := do(t, "POST", d.url(path), nil, string(readFile(t, filepath.Join("..", "..", "testdata", "events", "file_flv.json"))))
		if status != 200 {
			t.Fatalf("after the bad input %s answered %d %s", path, status, reply)
		}
		accepted++
	}
	d.waitDrained(t)
	var list struct{ Events []json.RawMessage }
	getJSON(t, d.admURL("/api/events?limit=1000"), &list)
	if n := len(list.Events); n != accepted {
		t.Errorf("%d events processed for %d accepted: a refused request was half-processed", n, accepted)
	}
}

func keys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	return b.String()
}

func dialRaw(t *testing.T, d *testDaemon) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", d.public.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle writes a byte every 200 ms until stop is closed or the write fails.
func trickle(c net.Conn) chan struct{} {
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	return stop
}

func readStatusLine(t *testing.T, c net.Conn, within time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no reply within %v: %v", within, err)
	}
	return strings.TrimSpace(line)
}

// TestAdminExposure: the daemon refuses to start with the admin listener
// off loopback unless a token guards it.
func TestAdminExposure(t *testing.T) {
	tests := []struct {
		name, addr, token string
		ok                bool
	}{
		{"loopback v4", "127.0.0.1:9090", "", true},
		{"loopback v6", "[::1]:9090", "", true},
		{"localhost", "localhost:9090", "", true},
		{"all interfaces", "0.0.0.0:9090", "", false},
		{"all interfaces, short form", ":9090", "", false},
		{"all interfaces v6", "[::]:9090", "", false},
		{"a private address", "10.0.0.5:9090", "", false},
		{"a host name", "admin.internal:9090", "", false},
		{"all interfaces with a token", "0.0.0.0:9090", "admin-token-0123456789", true},
		{"a token too short", "127.0.0.1:9090", "short", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hardeningConfig{adminToken: tt.token}.prepare(tt.addr, nil)
			if (err == nil) != tt.ok {
				t.Errorf("prepare(%s) = %v, want ok %v", tt.addr, err, tt.ok)
			}
		})
	}
	_, stderr, code := runCLI(t, nil, "serve", "--rules", filepath.Join("..", "..", "rules.example.yaml"),
		"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0")
	if code != 2 || !strings.Contains(stderr, "LIVEHOOK_ADMIN_TOKEN") || !strings.Contains(stderr, "not a loopback address") {
		t.Errorf("serve with an exposed admin: exit %d, %q", code, stderr)
	}
}

func TestAdminToken(t *testing.T) {
	const token = "admin-token-0123456789"
	d := startDaemonWith(t, serveConfig{rules: filepath.Join("..", "..", "rules.example.yaml"), hardening: hardeningConfig{adminToken: token}})
	tests := []struct {
		method, path, auth string
		status             int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/api/rules", "Bearer wrong-token-0123456789", 401},
		{"POST", "/-/reload", "", 401},
		{"GET", "/metrics", "Bearer " + token, 200},
		{"GET", "/api/rules", "Bearer " + token, 200},
		{"POST", "/-/reload", "Bearer " + token, 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.auth, func(t *testing.T) {
			h := map[string]string{}
			if tt.auth != "" {
				h["Authorization"] = tt.auth
			}
			status, reply := do(t, tt.method, d.admURL(tt.path), h, "")
			if status != tt.status {
				t.Errorf("%d %s, want %d", status, reply, tt.status)
			}
			if strings.Contains(reply, token) {
				t.Errorf("reply shows the token: %s", reply)
			}
		})
	}
}

// writeCert writes a fresh self-signed certificate for 127.0.0.1 named cn
// over certFile and keyFile, and returns it.
func writeCert(t *testing.T, certFile, keyFile, cn string, at time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	// Distinct times, however coarse the file system's clock.
	must(t, os.Chtimes(certFile, at, at))
	must(t, os.Chtimes(keyFile, at, at))
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return cert
}

// TestTLSCertificateReload: callbacks are served over HTTPS, and a renewed
// certificate is served from the next handshake on, without a restart; a
// broken renewal keeps the previous certificate.
func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, "first", time.Now().Add(-time.Minute))
	d := startDaemonWith(t, serveConfig{rules: filepath.Join("..", "..", "rules.example.yaml"),
		hardening: hardeningConfig{tlsCert: certFile, tlsKey: keyFile}})
	pool := x509.NewCertPool()
	pool.AddCert(first)
	served := func() string {
		t.Helper()
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := client.Post("https://"+d.public.Addr().String()+"/events/x", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatalf("HTTPS POST: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("HTTPS POST: %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("serving %q, want first", got)
	}
	if resp, err := http.Post(d.url("/events/x"), "", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("the TLS listener took a plain HTTP callback")
		}
	}
	second := writeCert(t, certFile, keyFile, "second", time.Now())
	pool.AddCert(second)
	if got := served(); got != "second" {
		t.Fatalf("after renewal serving %q, want second", got)
	}
	d.log.waitFor(t, "reload logged", msgIs("TLS certificate reloaded"))
	writeFile(t, certFile, "not a certificate")
	must(t, os.Chtimes(certFile, time.Now().Add(time.Minute), time.Now().Add(time.Minute)))
	if got := served(); got != "second" {
		t.Fatalf("after a broken renewal serving %q, want second still", got)
	}
	d.log.waitFor(t, "broken renewal logged", msgIs("TLS certificate changed but does not load; still serving the previous one"))
}

func TestTLSFlagsAreChecked(t *testing.T) {
	rules := filepath.Join("..", "..", "rules.example.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--tls-cert", "x.crt"}, "--tls-cert and --tls-key go together"},
		{"missing files", []string{"--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"}, "/nonexistent.crt"},
		{"bad body size", []string{"--max-body", "lots"}, "want a positive size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--rules", rules, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, tt.args...)
			_, stderr, code := runCLI(t, nil, args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestMaxBodyFlag(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"65536", 65536, true}, {"64KiB", 64 << 10, true}, {"1MiB", 1 << 20, true}, {"2M", 2 << 20, true}, {"8K", 8 << 10, true},
		{"0", 0, false}, {"-1", 0, false}, {"1GB", 0, false}, {"", 0, false}, {"99999999999MiB", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var b byteSize
			err := b.Set(tt.in)
			if (err == nil) != tt.ok || (tt.ok && int64(b) != tt.want) {
				t.Errorf("Set(%q) = %d, %v; want %d ok %v", tt.in, b, err, tt.want, tt.ok)
			}
		})
	}
}
