// Package rpctest checks Alibaba Cloud RPC-style requests (the signature
// version 1.0 of MPS, Live and most older products) as the services check
// them, for the fakes of those services in tests: the common parameters,
// the API version, the AccessKey id, the timestamp window, nonce reuse and
// the HMAC-SHA1 signature, recomputed from the published signing rules
// rather than with the SDK's code. It answers refusals in the RPC error
// format.
package rpctest

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Endpoint is how a service names itself in its error replies.
type Endpoint struct {
	Host    string // its host, answered as HostId
	Product string // its product code in Recommend links, e.g. Mts, live
}

// Service is one fake endpoint's checks.
type Service struct {
	Endpoint
	AccessKeyID, AccessKeySecret string
	Version                      string // the API version it serves, e.g. 2016-11-01

	mu     sync.Mutex
	nonces map[string]bool
}

// Refusal is a request the service refuses: its error code and any words
// the service appends to that code's message.
type Refusal struct {
	Code, Detail string
}

// Common are the statuses and messages of the refusals every RPC service
// answers alike.
var Common = map[string]Reply{
	"MissingParameter":            {Status: http.StatusBadRequest, Message: "The input parameter that is mandatory for processing this request is not supplied."},
	"InvalidParameter":            {Status: http.StatusBadRequest, Message: "The specified parameter is not valid."},
	"InvalidAccessKeyId.NotFound": {Status: http.StatusNotFound, Message: "Specified access key is not found."},
	"InvalidTimeStamp.Expired":    {Status: http.StatusBadRequest, Message: "Specified time stamp or date value is expired."},
	"SignatureNonceUsed":          {Status: http.StatusBadRequest, Message: "Specified signature nonce was used already."},
	"SignatureDoesNotMatch":       {Status: http.StatusBadRequest, Message: "Specified signature is not matched with our calculation."},
	"InvalidAction.NotFound":      {Status: http.StatusNotFound, Message: "Specified api is not found, please check your url and method."},
	"UnsupportedSignatureMethod":  {Status: http.StatusBadRequest, Message: "Specified signature method is not supported."},
	"InvalidVersion":              {Status: http.StatusBadRequest, Message: "Specified parameter Version is not valid."},
	"Throttling.User":             {Status: http.StatusBadRequest, Message: "Request was denied due to user flow control."},
}

// Reply is the HTTP status and message of an error code.
type Reply struct {
	Status  int
	Message string
}

// Check reads the request's parameters, from the query and a form body
// alike, and returns them, or the refusal the service would answer before
// looking at the action's own parameters.
func (s *Service) Check(r *http.Request) (url.Values, *Refusal) {
	if err := r.ParseForm(); err != nil {
		return nil, &Refusal{Code: "InvalidParameter"}
	}
	p := r.Form
	for _, k := range []string{"Format", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp", "Action", "Signature"} {
		if p.Get(k) == "" {
			return nil, &Refusal{Code: "MissingParameter", Detail: " " + k}
		}
	}
	switch {
	case p.Get("Version") != s.Version:
		return nil, &Refusal{Code: "InvalidVersion"}
	case p.Get("SignatureMethod") != "HMAC-SHA1" || p.Get("SignatureVersion") != "1.0":
		return nil, &Refusal{Code: "UnsupportedSignatureMethod"}
	case p.Get("AccessKeyId") != s.AccessKeyID:
		return nil, &Refusal{Code: "InvalidAccessKeyId.NotFound"}
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", p.Get("Timestamp"))
	if err != nil || time.Since(ts) > 15*time.Minute || time.Until(ts) > 15*time.Minute {
		return nil, &Refusal{Code: "InvalidTimeStamp.Expired"}
	}
	sts := StringToSign(r.Method, p)
	if !hmac.Equal([]byte(p.Get("Signature")), []byte(Sign(sts, s.AccessKeySecret))) {
		// The real service shows its string to sign, which the SDK compares.
		return nil, &Refusal{Code: "SignatureDoesNotMatch", Detail: " server string to sign is:" + sts}
	}
	s.mu.Lock()
	if s.nonces == nil {
		s.nonces = map[string]bool{}
	}
	used := s.nonces[p.Get("SignatureNonce")]
	s.nonces[p.Get("SignatureNonce")] = true
	s.mu.Unlock()
	if used {
		return nil, &Refusal{Code: "SignatureNonceUsed"}
	}
	return p, nil
}

// StringToSign builds the RPC string to sign from the received parameters:
// every parameter but Signature, sorted, RFC 3986-encoded as k=v and joined
// with &, then METHOD&%2F&encode(that).
func StringToSign(method string, p url.Values) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = PercentEncode(k) + "=" + PercentEncode(p.Get(k))
	}
	return method + "&" + PercentEncode("/") + "&" + PercentEncode(strings.Join(pairs, "&"))
}

// Sign is base64(HMAC-SHA1(secret + "&", stringToSign)).
func Sign(stringToSign, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// PercentEncode is RFC 3986 encoding: only A-Z a-z 0-9 - _ . ~ stay.
func PercentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// WriteError answers code in the RPC error format, with the status and
// message of reply.
func (e Endpoint) WriteError(w http.ResponseWriter, reply Reply, code, detail, requestID string) {
	WriteJSON(w, reply.Status, map[string]any{
		"RequestId": requestID,
		"HostId":    e.Host,
		"Code":      code,
		"Message":   reply.Message + detail,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + code + "&product=" + e.Product,
	})
}

// WriteJSON answers v as the services do.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
