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

// AliyunSignature is ALI-LIVE-SIGNATURE for a callback: the lower-case hex
// MD5 of "<host>|<timestamp>|<key>", where host is the host of the
// callback URL configured in Aliyun and timestamp is ALI-LIVE-TIMESTAMP
// exactly as sent.
func AliyunSignature(host, timestamp, key string) string {
	sum := md5.Sum([]byte(host + "|" + timestamp + "|" + key))
	return hex.EncodeToString(sum[:])
}

// Aliyun verifies ALI-LIVE-SIGNATURE. The signature covers the host and
// the timestamp but not the body, so it is checked before the body is read.
type Aliyun struct {
	keys    []secret.Secret // several during a rotation: a new key applies only once a stream is re-pushed
	hosts   []string
	maxSkew time.Duration
}

// NewAliyun returns a verifier accepting a signature made with any of keys
// for host. When host carries a port (hooks.example.com:8080), the
// signature is also accepted over the host without it: which one Aliyun
// signs for a callback URL with a port is not documented.
func NewAliyun(keys []secret.Secret, host string, maxSkew time.Duration) *Aliyun {
	a := &Aliyun{keys: keys, hosts: []string{host}, maxSkew: maxSkew}
	if h, _, err := net.SplitHostPort(host); err == nil && h != "" {
		a.hosts = append(a.hosts, h)
	}
	return a
}

// Method implements Verifier.
func (a *Aliyun) Method() string { return "aliyun_signature" }

// BodySigned implements Verifier.
func (a *Aliyun) BodySigned() bool { return false }

// Verify implements Verifier.
func (a *Aliyun) Verify(h http.Header, _ []byte, now time.Time) error {
	ts, sig := h.Get(HeaderAliTimestamp), h.Get(HeaderAliSignature)
	if ts == "" || sig == "" {
		return fail(ReasonMissing, "missing %s or %s header: this source requires Aliyun callback authentication", HeaderAliTimestamp, HeaderAliSignature)
	}
	got, err := hex.DecodeString(sig) // either case
	if err != nil || len(got) != md5.Size {
		return fail(ReasonMalformed, "%s: want 32 hexadecimal digits", HeaderAliSignature)
	}
	match := 0
	for _, k := range a.keys {
		for _, host := range a.hosts {
			want := md5.Sum([]byte(host + "|" + ts + "|" + k.Reveal()))
			match |= subtle.ConstantTimeCompare(got, want[:])
		}
	}
	if match != 1 {
		return fail(ReasonMismatch, "%s does not match", HeaderAliSignature)
	}
	return timestamp(HeaderAliTimestamp, ts, now, a.maxSkew)
}
