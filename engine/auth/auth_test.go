package auth_test

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/secret"
)

// TestAliyunSignatureVector checks the algorithm against the example of
// Aliyun's callback-authentication page, computed independently with
// `printf '%s' 'learn.aliyundoc.com|1519375990|yourkey' | md5sum`.
func TestAliyunSignatureVector(t *testing.T) {
	const want = "9e226fc2c250be266e3657e156f68c12"
	if got := auth.AliyunSignature("learn.aliyundoc.com", "1519375990", "yourkey"); got != want {
		t.Fatalf("AliyunSignature = %s, want %s", got, want)
	}
}

// TestVODSignatureVector checks the algorithm against the example of
// VOD's HTTP-callback authentication page, computed independently with
// `printf '%s' 'https://www.example.com/your/callback|1519375990|test123' | md5sum`.
func TestVODSignatureVector(t *testing.T) {
	const want = "c72b60894140fa98920f1279219b7ed4"
	if got := auth.VODSignature("https://www.example.com/your/callback", "1519375990", "test123"); got != want {
		t.Fatalf("VODSignature = %s, want %s", got, want)
	}
}

// TestWebhookSignatureVector checks the Standard Webhooks example (the
// spec's reference libraries' test vector).
func TestWebhookSignatureVector(t *testing.T) {
	key, err := auth.WebhookKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := auth.WebhookSignature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("WebhookSignature = %s, want %s", got, want)
	}
}

const (
	host   = "hooks.example.com"
	newKey = "0123456789abcdefKEY"
	oldKey = "OLDkey0123456789"
)

var now = time.Unix(1714564800, 0)

func aliHeaders(ts, sig string) http.Header {
	h := http.Header{}
	if ts != "" {
		h.Set(auth.HeaderAliTimestamp, ts)
	}
	if sig != "" {
		h.Set(auth.HeaderAliSignature, sig)
	}
	return h
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func TestAliyunVerify(t *testing.T) {
	both := auth.NewAliyun([]secret.Secret{secret.New(newKey), secret.New(oldKey)}, host, 5*time.Minute)
	onlyNew := auth.NewAliyun([]secret.Secret{secret.New(newKey)}, host, 5*time.Minute)
	ts := unix(now)
	// Computed with md5sum, not with the code under test.
	const signedNew = "be7c7302ffcf380e396d0e4b30b1b8e9" // hooks.example.com|1714564800|0123456789abcdefKEY
	const signedOld = "8a6173c36c544898672433ebcf56264e" // hooks.example.com|1714564800|OLDkey0123456789
	tests := []struct {
		name   string
		v      *auth.Aliyun
		h      http.Header
		now    time.Time
		reason string // "" for accepted
	}{
		{name: "valid", v: onlyNew, h: aliHeaders(ts, signedNew), now: now},
		{name: "valid, upper-case hex", v: onlyNew, h: aliHeaders(ts, strings.ToUpper(signedNew)), now: now},
		{name: "rotation: new key", v: both, h: aliHeaders(ts, signedNew), now: now},
		{name: "rotation: old key", v: both, h: aliHeaders(ts, signedOld), now: now},
		{name: "old key after the rotation ended", v: onlyNew, h: aliHeaders(ts, signedOld), now: now, reason: auth.ReasonMismatch},
		{name: "wrong key", v: onlyNew, h: aliHeaders(ts, auth.AliyunSignature(host, ts, "not-the-key-12345")), now: now, reason: auth.ReasonMismatch},
		{name: "wrong host", v: onlyNew, h: aliHeaders(ts, auth.AliyunSignature("evil.example.com", ts, newKey)), now: now, reason: auth.ReasonMismatch},
		{name: "signature for another timestamp", v: onlyNew, h: aliHeaders(unix(now.Add(time.Second)), signedNew), now: now, reason: auth.ReasonMismatch},
		{name: "missing both headers", v: onlyNew, h: aliHeaders("", ""), now: now, reason: auth.ReasonMissing},
		{name: "missing signature", v: onlyNew, h: aliHeaders(ts, ""), now: now, reason: auth.ReasonMissing},
		{name: "missing timestamp", v: onlyNew, h: aliHeaders("", signedNew), now: now, reason: auth.ReasonMissing},
		{name: "signature too short", v: onlyNew, h: aliHeaders(ts, signedNew[:31]), now: now, reason: auth.ReasonMalformed},
		{name: "signature not hex", v: onlyNew, h: aliHeaders(ts, "zz"+signedNew[2:]), now: now, reason: auth.ReasonMalformed},
		{name: "non-numeric timestamp", v: onlyNew, h: aliHeaders("soon", auth.AliyunSignature(host, "soon", newKey)), now: now, reason: auth.ReasonTimestamp},
		{name: "negative timestamp", v: onlyNew, h: aliHeaders("-5", auth.AliyunSignature(host, "-5", newKey)), now: now, reason: auth.ReasonTimestamp},
		{name: "huge timestamp", v: onlyNew, h: aliHeaders("99999999999999999999", auth.AliyunSignature(host, "99999999999999999999", newKey)), now: now, reason: auth.ReasonTimestamp},
		{name: "at the edge of the window", v: onlyNew, h: aliHeaders(ts, signedNew), now: now.Add(5 * time.Minute)},
		{name: "replayed after the window", v: onlyNew, h: aliHeaders(ts, signedNew), now: now.Add(5*time.Minute + time.Second), reason: auth.ReasonExpired},
		{name: "timestamp from the future", v: onlyNew, h: aliHeaders(ts, signedNew), now: now.Add(-6 * time.Minute), reason: auth.ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkReason(t, tt.v.Verify(tt.h, nil, tt.now), tt.reason)
		})
	}
}

func TestAliyunHostWithPort(t *testing.T) {
	v := auth.NewAliyun([]secret.Secret{secret.New(newKey)}, host+":8443", time.Minute)
	ts := unix(now)
	for _, h := range []string{host + ":8443", host} {
		checkReason(t, v.Verify(aliHeaders(ts, auth.AliyunSignature(h, ts, newKey)), nil, now), "")
	}
	checkReason(t, v.Verify(aliHeaders(ts, auth.AliyunSignature(host+":80", ts, newKey)), nil, now), auth.ReasonMismatch)
}

func vodHeaders(ts, sig string) http.Header {
	h := http.Header{}
	h.Set(auth.HeaderVODTimestamp, ts)
	h.Set(auth.HeaderVODSignature, sig)
	return h
}

// TestVODVerify: VOD signs over the whole callback URL, under headers of
// its own; Live's headers, or Live's subject, do not pass.
func TestVODVerify(t *testing.T) {
	const url = "https://" + host + "/callbacks/vod"
	v := auth.NewVOD([]secret.Secret{secret.New(newKey), secret.New(oldKey)}, url, 5*time.Minute)
	if v.Method() != "vod_signature" {
		t.Errorf("Method = %q", v.Method())
	}
	ts := unix(now)
	// Computed with md5sum, not with the code under test.
	const (
		vodNew = "4a0be678d6b7ba6a60e73bc05effa07b" // https://hooks.example.com/callbacks/vod|1714564800|0123456789abcdefKEY
		vodOld = "e03a51358df654d9fdc7c6d6612fc6a8" // https://hooks.example.com/callbacks/vod|1714564800|OLDkey0123456789
	)
	tests := []struct {
		name   string
		h      http.Header
		now    time.Time
		reason string
	}{
		{name: "valid, new key", h: vodHeaders(ts, vodNew), now: now},
		{name: "valid, old key", h: vodHeaders(ts, vodOld), now: now},
		{name: "over the host only, as Live signs", h: vodHeaders(ts, auth.AliyunSignature(host, ts, newKey)), now: now, reason: auth.ReasonMismatch},
		{name: "over another path", h: vodHeaders(ts, auth.VODSignature("https://"+host+"/callbacks/other", ts, newKey)), now: now, reason: auth.ReasonMismatch},
		{name: "over http instead of https", h: vodHeaders(ts, auth.VODSignature("http://"+host+"/callbacks/vod", ts, newKey)), now: now, reason: auth.ReasonMismatch},
		{name: "wrong key", h: vodHeaders(ts, auth.VODSignature(url, ts, "not-the-key-12345")), now: now, reason: auth.ReasonMismatch},
		{name: "Live's headers", h: aliHeaders(ts, vodNew), now: now, reason: auth.ReasonMissing},
		{name: "missing signature", h: vodHeaders(ts, ""), now: now, reason: auth.ReasonMissing},
		{name: "signature not hex", h: vodHeaders(ts, "zz"+vodNew[2:]), now: now, reason: auth.ReasonMalformed},
		{name: "replayed after the window", h: vodHeaders(ts, vodNew), now: now.Add(5*time.Minute + time.Second), reason: auth.ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkReason(t, v.Verify(tt.h, nil, tt.now), tt.reason)
		})
	}
}

func checkReason(t *testing.T, err error, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var f *auth.Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T), want a *auth.Failure with reason %s", err, err, reason)
	}
	if f.Reason != reason {
		t.Errorf("reason %q (%v), want %q", f.Reason, err, reason)
	}
	for _, k := range []string{newKey, oldKey, "whsec_", "sekrit"} {
		if strings.Contains(f.Msg, k) {
			t.Errorf("message %q gives away a secret", f.Msg)
		}
	}
}

func TestBearerVerify(t *testing.T) {
	v := auth.NewBearer([]secret.Secret{secret.New("sekrit-token-1"), secret.New("sekrit-token-2")})
	tests := []struct{ name, header, reason string }{
		{"first token", "Bearer sekrit-token-1", ""},
		{"second token", "Bearer sekrit-token-2", ""},
		{"scheme in lower case", "bearer sekrit-token-1", ""},
		{"missing", "", auth.ReasonMissing},
		{"basic auth", "Basic c2Vrcml0OnRva2Vu", auth.ReasonMalformed},
		{"no token", "Bearer ", auth.ReasonMalformed},
		{"wrong token", "Bearer sekrit-token-3", auth.ReasonMismatch},
		{"prefix of a token", "Bearer sekrit-token", auth.ReasonMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			checkReason(t, v.Verify(h, nil, now), tt.reason)
		})
	}
}

func TestStandardWebhooksVerify(t *testing.T) {
	key1, _ := auth.WebhookKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	key2, _ := auth.WebhookKey("sekrit-raw-secret")
	other, _ := auth.WebhookKey("whsec_c2VrcmV0LWJ1dC1ub3Qtb3Vycw==")
	v := auth.NewStandardWebhooks([][]byte{key1, key2}, 5*time.Minute)
	body := []byte(`{"job":"done"}`)
	ts := unix(now)
	headers := func(id, ts, sig string) http.Header {
		h := http.Header{}
		for k, v := range map[string]string{"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig} {
			if v != "" {
				h.Set(k, v)
			}
		}
		return h
	}
	good := auth.WebhookSignature(key1, "msg_1", ts, body)
	tests := []struct {
		name   string
		h      http.Header
		body   []byte
		now    time.Time
		reason string
	}{
		{name: "valid", h: headers("msg_1", ts, good), body: body, now: now},
		{name: "raw secret", h: headers("msg_1", ts, auth.WebhookSignature(key2, "msg_1", ts, body)), body: body, now: now},
		{name: "several signatures, one ours", h: headers("msg_1", ts, "v1a,abc "+auth.WebhookSignature(other, "msg_1", ts, body)+" "+good), body: body, now: now},
		{name: "body changed", h: headers("msg_1", ts, good), body: []byte(`{"job":"undone"}`), now: now, reason: auth.ReasonMismatch},
		{name: "id changed", h: headers("msg_2", ts, good), body: body, now: now, reason: auth.ReasonMismatch},
		{name: "other key", h: headers("msg_1", ts, auth.WebhookSignature(other, "msg_1", ts, body)), body: body, now: now, reason: auth.ReasonMismatch},
		{name: "missing id", h: headers("", ts, good), body: body, now: now, reason: auth.ReasonMissing},
		{name: "missing signature", h: headers("msg_1", ts, ""), body: body, now: now, reason: auth.ReasonMissing},
		{name: "only an ed25519 signature", h: headers("msg_1", ts, "v1a,abc"), body: body, now: now, reason: auth.ReasonMalformed},
		{name: "signature not base64", h: headers("msg_1", ts, "v1,!!!"), body: body, now: now, reason: auth.ReasonMalformed},
		{name: "timestamp not a number", h: headers("msg_1", "now", auth.WebhookSignature(key1, "msg_1", "now", body)), body: body, now: now, reason: auth.ReasonTimestamp},
		{name: "replayed after the window", h: headers("msg_1", ts, good), body: body, now: now.Add(10 * time.Minute), reason: auth.ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkReason(t, v.Verify(tt.h, tt.body, tt.now), tt.reason)
		})
	}
}

// TestStandardWebhooksReferenceLibrary checks ours against the
// specification's own Go library both ways: what it signs, ours accepts
// (one of two signatures, as during a key rotation); what ours signs, as
// `livehook send` and the webhook action do, it accepts.
func TestStandardWebhooksReferenceLibrary(t *testing.T) {
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	lib, err := standardwebhooks.NewWebhook(strings.TrimPrefix(whsec, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	retired, err := standardwebhooks.NewWebhook("c2VjcmV0LWJ1dC1ub3Qtb3Vycw==")
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.WebhookKey(whsec)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"job":"done"}`)
	at := time.Now() // the library checks against the process clock
	sig, _ := lib.Sign("msg_1", at, body)
	retiredSig, _ := retired.Sign("msg_1", at, body)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", unix(at))
	h.Set("webhook-signature", retiredSig+" "+sig)
	if err := auth.NewStandardWebhooks([][]byte{key}, 5*time.Minute).Verify(h, body, at); err != nil {
		t.Errorf("ours refuses what the library signed: %v", err)
	}
	h.Set("webhook-signature", auth.WebhookSignature(key, "msg_1", unix(at), body))
	if err := lib.Verify(body, h); err != nil {
		t.Errorf("the library refuses what ours signed: %v", err)
	}
}

func TestWebhookKey(t *testing.T) {
	tests := []struct {
		name, secret string
		want         string // the key, or "" for an error
	}{
		{"whsec with padding", "whsec_c2VjcmV0", "secret"},
		{"whsec without padding", "whsec_c2VjcmV0MQ", "secret1"},
		{"raw", "plain", "plain"},
		{"bad base64", "whsec_***", ""},
		{"empty after prefix", "whsec_", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := auth.WebhookKey(tt.secret)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted: %q", k)
				}
				if len(tt.secret) > len("whsec_") && strings.Contains(err.Error(), tt.secret) {
					t.Errorf("error %q quotes the secret", err)
				}
				return
			}
			if err != nil || string(k) != tt.want {
				t.Errorf("WebhookKey = %q, %v; want %q", k, err, tt.want)
			}
		})
	}
}

func TestPolicyAllows(t *testing.T) {
	var cidrs []netip.Prefix
	for _, s := range []string{"10.0.0.0/8", "203.0.113.7", "2001:db8::/32", "::ffff:192.0.2.0/120"} {
		p, err := auth.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		cidrs = append(cidrs, p)
	}
	p := &auth.Policy{Enabled: true, AllowCIDRs: cidrs}
	tests := []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true}, {"::ffff:10.1.2.3", true}, {"203.0.113.7", true}, {"203.0.113.8", false},
		{"2001:db8::1", true}, {"2001:db9::1", false}, {"192.0.2.9", true}, {"127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			if got := p.Allows(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("Allows(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
	if !(&auth.Policy{Enabled: true}).Allows(netip.MustParseAddr("198.51.100.1")) {
		t.Error("a policy without allow_cidrs refuses a client")
	}
	for _, bad := range []string{"10.0.0.0/33", "hooks.example.com", "", "10.0.0/8"} {
		if _, err := auth.ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
}

func FuzzAliyunVerify(f *testing.F) {
	f.Add("1714564800", "be7c7302ffcf380e396d0e4b30b1b8e9")
	f.Add("", "")
	f.Add("1714564800", "BE7C7302FFCF380E396D0E4B30B1B8E9")
	f.Add("-1", "zz")
	v := auth.NewAliyun([]secret.Secret{secret.New(newKey)}, host, 5*time.Minute)
	f.Fuzz(func(t *testing.T, ts, sig string) {
		err := v.Verify(aliHeaders(ts, sig), nil, now)
		if err == nil {
			// Accepted: it must be the real signature for a timestamp in the window.
			if !strings.EqualFold(sig, auth.AliyunSignature(host, ts, newKey)) {
				t.Fatalf("accepted a signature that is not ours: ts %q sig %q", ts, sig)
			}
			return
		}
		var fl *auth.Failure
		if !errors.As(err, &fl) || fl.Reason == "" {
			t.Fatalf("error %v is not a Failure with a reason", err)
		}
	})
}

func FuzzStandardWebhooksVerify(f *testing.F) {
	key, _ := auth.WebhookKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	ts := unix(now)
	f.Add("msg_1", ts, auth.WebhookSignature(key, "msg_1", ts, []byte("{}")), []byte("{}"))
	f.Add("", "", "", []byte(nil))
	f.Add("msg_1", ts, "v1,"+strings.Repeat("A", 44)+" v1a,x v1,", []byte("{}"))
	v := auth.NewStandardWebhooks([][]byte{key}, 5*time.Minute)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		err := v.Verify(h, body, now)
		if err == nil {
			want := auth.WebhookSignature(key, h.Get("webhook-id"), h.Get("webhook-timestamp"), body)
			if !slices.Contains(strings.Fields(h.Get("webhook-signature")), want) {
				t.Fatalf("accepted a signature that is not ours: %q", sig)
			}
			return
		}
		var fl *auth.Failure
		if !errors.As(err, &fl) || fl.Reason == "" {
			t.Fatalf("error %v is not a Failure with a reason", err)
		}
	})
}
