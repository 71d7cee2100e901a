package auth

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"time"

	"github.com/livehook/livehook/engine/secret"
)

// Aliyun Live's callback authentication headers.
const (
	HeaderAliTimestamp = "ALI-LIVE-TIMESTAMP"
	HeaderAliSignature = "ALI-LIVE-SIGNATURE"
)

// ApsaraVideo VOD's callback authentication headers.
const (
	HeaderVODTimestamp = "X-VOD-TIMESTAMP"
	HeaderVODSignature = "X-VOD-SIGNATURE"
)

// AliyunSignature is ALI-LIVE-SIGNATURE for a callback: the lower-case hex
// MD5 of "<host>|<timestamp>|<key>", where host is the host of the
// callback URL configured in Aliyun and timestamp is ALI-LIVE-TIMESTAMP
// exactly as sent.
func AliyunSignature(host, timestamp, key string) string { return md5Hex(host, timestamp, key) }

// VODSignature is X-VOD-SIGNATURE for a VOD callback: the same MD5, of
// "<callback URL>|<timestamp>|<private key>", over the whole callback URL
// configured in VOD rather than its host.
func VODSignature(callbackURL, timestamp, key string) string {
	return md5Hex(callbackURL, timestamp, key)
}

func md5Hex(subject, timestamp, key string) string {
	sum := md5.Sum([]byte(subject + "|" + timestamp + "|" + key))
	return hex.EncodeToString(sum[:])
}

// Aliyun verifies Aliyun's MD5 callback signatures: ALI-LIVE-SIGNATURE of
// Live, or X-VOD-SIGNATURE of VOD. The signature covers a subject (Live:
// the callback host; VOD: the callback URL) and the timestamp but not the
// body, so it is checked before the body is read.
type Aliyun struct {
	method              string
	tsHeader, sigHeader string
	keys                []secret.Secret // several during a rotation: a new key applies only once a stream is re-pushed
	subjects            []string
	maxSkew             time.Duration
}

// NewAliyun returns a verifier of ALI-LIVE-SIGNATURE accepting a signature
// made with any of keys for host. When host carries a port
// (hooks.example.com:8080), the signature is also accepted over the host
// without it: which one Aliyun signs for a callback URL with a port is not
// documented.
func NewAliyun(keys []secret.Secret, host string, maxSkew time.Duration) *Aliyun {
	a := &Aliyun{method: "aliyun_signature", tsHeader: HeaderAliTimestamp, sigHeader: HeaderAliSignature,
		keys: keys, subjects: []string{host}, maxSkew: maxSkew}
	if h, _, err := net.SplitHostPort(host); err == nil && h != "" {
		a.subjects = append(a.subjects, h)
	}
	return a
}

// NewVOD returns a verifier of X-VOD-SIGNATURE accepting a signature made
// with any of keys over callbackURL, the URL configured in VOD exactly as
// written there.
func NewVOD(keys []secret.Secret, callbackURL string, maxSkew time.Duration) *Aliyun {
	return &Aliyun{method: "vod_signature", tsHeader: HeaderVODTimestamp, sigHeader: HeaderVODSignature,
		keys: keys, subjects: []string{callbackURL}, maxSkew: maxSkew}
}

// Method implements Verifier.
func (a *Aliyun) Method() string { return a.method }

// BodySigned implements Verifier.
func (a *Aliyun) BodySigned() bool { return false }

// Verify implements Verifier.
func (a *Aliyun) Verify(h http.Header, _ []byte, now time.Time) error {
	ts, sig := h.Get(a.tsHeader), h.Get(a.sigHeader)
	if ts == "" || sig == "" {
		return fail(ReasonMissing, "missing %s or %s header: this source requires signed callbacks", a.tsHeader, a.sigHeader)
	}
	got, err := hex.DecodeString(sig) // either case
	if err != nil || len(got) != md5.Size {
		return fail(ReasonMalformed, "%s: want 32 hexadecimal digits", a.sigHeader)
	}
	match := 0
	for _, k := range a.keys {
		for _, s := range a.subjects {
			want := md5.Sum([]byte(s + "|" + ts + "|" + k.Reveal()))
			match |= subtle.ConstantTimeCompare(got, want[:])
		}
	}
	if match != 1 {
		return fail(ReasonMismatch, "%s does not match", a.sigHeader)
	}
	return timestamp(a.tsHeader, ts, now, a.maxSkew)
}
