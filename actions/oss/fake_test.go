package oss

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	osssdk "github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/signer"
)

// fakeOSS is an OSS endpoint, addressed path-style as the SDK does for an IP
// or localhost endpoint. It checks what OSS checks before it accepts a
// processing request: the AccessKey id, the V4 signature (recomputed with
// the SDK's own signer from the server's copy of the secret), the request
// time, Content-MD5, the process parameter and body, and the base64url
// names inside sys/saveas and notify, which it decodes. It answers with
// OSS's documented bodies; reply scripts the answer to a request that
// passed every check.
type fakeOSS struct {
	*httptest.Server
	ak, sk, region string

	mu    sync.Mutex
	seq   int
	calls []ossCall
	reply func(w http.ResponseWriter, r *http.Request, c ossCall)
}

// ossCall is one request as the fake understood it.
type ossCall struct {
	RequestID     string
	TaskID        string // answered to an accepted async request
	EventID       string
	Rejected      string // the error code the fake answered with, if it refused the request
	Param         string // x-oss-async-process or x-oss-process
	Bucket, Key   string
	Process       string // as sent
	Base          string // the processing before |sys/saveas
	SaveBucket    string // decoded b_; "" when absent (OSS then uses the source bucket)
	SaveObject    string // decoded o_
	Topic         string // decoded notify topic
	HasSaveAs     bool
	HasSaveBucket bool
}

func newFakeOSS(t *testing.T, ak, sk, region string) *fakeOSS {
	t.Helper()
	f := &fakeOSS{ak: ak, sk: sk, region: region}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// Calls returns every request the fake received, refused ones included.
func (f *fakeOSS) Calls() []ossCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ossCall(nil), f.calls...)
}

func (f *fakeOSS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seq++
	n := f.seq
	f.mu.Unlock()
	c := ossCall{
		RequestID: fmt.Sprintf("65F2A1B0C3D4E5F6%08X", n),
		TaskID:    fmt.Sprintf("MediaConvert-e4a737df-69e9-4fca-8d9b-%012x", n),
		EventID:   fmt.Sprintf("181-1kZUlN60OH4fWOcOjZEnGnG%04d", n),
	}
	c.Rejected = f.check(r, &c)
	f.mu.Lock()
	f.calls = append(f.calls, c)
	reply := f.reply
	f.mu.Unlock()
	w.Header().Set("x-oss-request-id", c.RequestID)
	switch {
	case c.Rejected != "":
		status, msg := rejections[c.Rejected].status, rejections[c.Rejected].msg
		writeOSSError(w, status, c.Rejected, msg, c.RequestID)
	case reply != nil:
		reply(w, r, c)
	case c.Param == "x-oss-process":
		obj, bkt := c.SaveObject, c.SaveBucket
		if bkt == "" {
			bkt = c.Bucket
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"bucket":%q,"fileSize":21839,"object":%q,"status":"OK"}`, bkt, obj)
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"EventId":%q,"RequestId":%q,"TaskId":%q}`, c.EventID, c.RequestID, c.TaskID)
	}
}

var rejections = map[string]struct {
	status int
	msg    string
}{
	"MethodNotAllowed":      {http.StatusMethodNotAllowed, "The specified method is not allowed against this resource."},
	"InvalidAccessKeyId":    {http.StatusForbidden, "The OSS Access Key Id you provided does not exist in our records."},
	"SignatureDoesNotMatch": {http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your key and signing method."},
	"RequestTimeTooSkewed":  {http.StatusForbidden, "The difference between the request time and the current time is too large."},
	"InvalidDigest":         {http.StatusBadRequest, "The Content-MD5 you specified was invalid."},
	"InvalidArgument":       {http.StatusBadRequest, "The process parameter or body is invalid."},
}

// check returns the OSS error code for a request OSS would refuse, or "".
func (f *fakeOSS) check(r *http.Request, c *ossCall) string {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "InvalidArgument"
	}
	if r.Method != http.MethodPost {
		return "MethodNotAllowed"
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "OSS4-HMAC-SHA256 Credential="+f.ak+"/") {
		return "InvalidAccessKeyId"
	}
	t, err := time.Parse("20060102T150405Z", r.Header.Get("x-oss-date"))
	if err != nil {
		return "SignatureDoesNotMatch"
	}
	if d := time.Since(t); d > 15*time.Minute || d < -15*time.Minute {
		return "RequestTimeTooSkewed"
	}
	if !f.verifyV4(r, t) {
		return "SignatureDoesNotMatch"
	}
	sum := md5.Sum(body)
	if r.Header.Get("Content-MD5") != base64.StdEncoding.EncodeToString(sum[:]) {
		return "InvalidDigest"
	}
	bk := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	if len(bk) != 2 || bk[0] == "" || bk[1] == "" {
		return "InvalidArgument"
	}
	c.Bucket, c.Key = bk[0], bk[1]
	// The sub-resource is a bare query key; the instruction is the body.
	c.Param = r.URL.RawQuery
	if c.Param != "x-oss-async-process" && c.Param != "x-oss-process" {
		return "InvalidArgument"
	}
	process, ok := strings.CutPrefix(string(body), c.Param+"=")
	if !ok || process == "" {
		return "InvalidArgument"
	}
	c.Process = process
	if !parseProcess(c) {
		return "InvalidArgument"
	}
	return ""
}

// verifyV4 recomputes the request's signature with the SDK's signer and the
// fake's own copy of the credentials.
func (f *fakeOSS) verifyV4(r *http.Request, t time.Time) bool {
	auth := r.Header.Get("Authorization")
	var additional []string
	if i := strings.Index(auth, "AdditionalHeaders="); i >= 0 {
		s := auth[i+len("AdditionalHeaders="):]
		if j := strings.Index(s, ","); j >= 0 {
			additional = strings.Split(s[:j], ";")
		}
	}
	bk := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	if len(bk) != 2 {
		return false
	}
	c := r.Clone(r.Context())
	c.Header = r.Header.Clone()
	c.Header.Del("Authorization")
	sc := &signer.SigningContext{
		Product: osssdk.Ptr("oss"), Region: &f.region, Bucket: &bk[0], Key: &bk[1],
		Request:     c,
		Credentials: &credentials.Credentials{AccessKeyID: f.ak, AccessKeySecret: f.sk},
		Time:        t, AdditionalHeaders: additional,
	}
	if (&signer.SignerV4{}).Sign(r.Context(), sc) != nil {
		return false
	}
	return hmac.Equal([]byte(c.Header.Get("Authorization")), []byte(auth))
}

// parseProcess splits "<base>|sys/saveas,b_..,o_../notify,topic_.." and
// decodes the names, refusing padded or non-URL-safe base64 as OSS does.
func parseProcess(c *ossCall) bool {
	base, rest, found := strings.Cut(c.Process, "|sys/saveas,")
	c.Base, c.HasSaveAs = base, found
	if !found {
		base, topic, ok := strings.Cut(base, "/notify,topic_")
		c.Base = base
		return !ok || decodeInto(&c.Topic, topic)
	}
	saveas, topic, hasTopic := strings.Cut(rest, "/notify,topic_")
	if hasTopic && !decodeInto(&c.Topic, topic) {
		return false
	}
	for _, kv := range strings.Split(saveas, ",") {
		switch {
		case strings.HasPrefix(kv, "b_"):
			c.HasSaveBucket = true
			if !decodeInto(&c.SaveBucket, kv[2:]) {
				return false
			}
		case strings.HasPrefix(kv, "o_"):
			if !decodeInto(&c.SaveObject, kv[2:]) {
				return false
			}
		default:
			return false
		}
	}
	return c.SaveObject != ""
}

func decodeInto(dst *string, s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return false
	}
	*dst = string(b)
	return true
}

// writeOSSError answers in OSS's XML error format.
func writeOSSError(w http.ResponseWriter, status int, code, msg, requestID string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-oss-request-id", requestID)
	w.Header().Set("x-oss-ec", "0003-00000001")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>%s</Code>
  <Message>%s</Message>
  <RequestId>%s</RequestId>
  <HostId>rec-bucket.oss-cn-shanghai.aliyuncs.com</HostId>
  <EC>0003-00000001</EC>
  <RecommendDoc>https://api.aliyun.com/troubleshoot?q=0003-00000001</RecommendDoc>
</Error>
`, code, msg, requestID)
}
