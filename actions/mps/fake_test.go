package mps

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeMPS is an MTS RPC endpoint. It checks what the service checks before
// it queues a job: the common parameters, the AccessKey id, the timestamp
// window, nonce reuse and the HMAC-SHA1 signature, recomputed here from
// the RPC signing rules rather than with the SDK's code; then SubmitJobs'
// own parameters, decoding the URL-encoded keys. It answers in MPS's JSON,
// failures included; reply scripts the answer to a request that passed.
type fakeMPS struct {
	*httptest.Server
	ak, sk string

	mu     sync.Mutex
	seq    int
	nonces map[string]bool
	calls  []mpsCall
	reply  func(w http.ResponseWriter, r *http.Request, c mpsCall)
}

// mpsCall is one request as the fake understood it.
type mpsCall struct {
	RequestID      string
	JobID          string // answered to an accepted submission
	Rejected       string // the error code the fake answered with, if it refused the request
	Action         string
	RegionID       string
	PipelineID     string
	InputBucket    string
	InputLocation  string
	InputObject    string // decoded
	RawInputObject string // as sent
	OutputBucket   string
	OutputLocation string
	OutputObject   string // decoded
	TemplateID     string
	UserData       string
}

func newFakeMPS(t *testing.T, ak, sk string) *fakeMPS {
	t.Helper()
	f := &fakeMPS{ak: ak, sk: sk, nonces: map[string]bool{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMPS) Calls() []mpsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mpsCall(nil), f.calls...)
}

// rpcErrors are the statuses and messages MPS answers for each code.
var rpcErrors = map[string]struct {
	status int
	msg    string
}{
	"MissingParameter":              {http.StatusBadRequest, "The input parameter that is mandatory for processing this request is not supplied."},
	"InvalidParameter":              {http.StatusBadRequest, "The specified parameter is not valid."},
	"InvalidAccessKeyId.NotFound":   {http.StatusNotFound, "Specified access key is not found."},
	"InvalidTimeStamp.Expired":      {http.StatusBadRequest, "Specified time stamp or date value is expired."},
	"SignatureNonceUsed":            {http.StatusBadRequest, "Specified signature nonce was used already."},
	"SignatureDoesNotMatch":         {http.StatusBadRequest, "Specified signature is not matched with our calculation."},
	"InvalidAction.NotFound":        {http.StatusNotFound, "Specified api is not found, please check your url and method."},
	"UnsupportedSignatureMethod":    {http.StatusBadRequest, "Specified signature method is not supported."},
	"InvalidVersion":                {http.StatusBadRequest, "Specified parameter Version is not valid."},
	"InvalidParameter.Outputs":      {http.StatusBadRequest, "The parameter \"Outputs\" is invalid."},
	"InvalidParameter.Input":        {http.StatusBadRequest, "The parameter \"Input\" is invalid."},
	"InvalidParameter.ObjectKey":    {http.StatusBadRequest, "The object key is not correctly URL-encoded."},
	"InvalidParameter.PipelineId":   {http.StatusBadRequest, "The parameter \"PipelineId\" is empty."},
	"InvalidParameter.OutputBucket": {http.StatusBadRequest, "The parameter \"OutputBucket\" is empty."},
}

func (f *fakeMPS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seq++
	n := f.seq
	f.mu.Unlock()
	c := mpsCall{
		RequestID: fmt.Sprintf("25818875-5F78-4A%02d-B6E6-D7BF5F32D7C%d", n%100, n),
		JobID:     fmt.Sprintf("31fa3c9ca8134fb4b0b0f7878301%04x", n),
	}
	var detail string
	c.Rejected, detail = f.check(r, &c)
	f.mu.Lock()
	f.calls = append(f.calls, c)
	reply := f.reply
	f.mu.Unlock()
	switch {
	case c.Rejected != "":
		e := rpcErrors[c.Rejected]
		writeRPCError(w, e.status, c.Rejected, e.msg+detail, c.RequestID)
	case reply != nil:
		reply(w, r, c)
	default:
		writeJSON(w, http.StatusOK, jobReply(c, true, "", ""))
	}
}

// check returns the error code MPS would refuse the request with, and any
// text MPS appends to that code's message.
func (f *fakeMPS) check(r *http.Request, c *mpsCall) (string, string) {
	if err := r.ParseForm(); err != nil {
		return "InvalidParameter", ""
	}
	p := r.Form
	for _, k := range []string{"Format", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp", "Action", "Signature"} {
		if p.Get(k) == "" {
			return "MissingParameter", " " + k
		}
	}
	switch {
	case p.Get("Version") != "2014-06-18":
		return "InvalidVersion", ""
	case p.Get("SignatureMethod") != "HMAC-SHA1" || p.Get("SignatureVersion") != "1.0":
		return "UnsupportedSignatureMethod", ""
	case p.Get("AccessKeyId") != f.ak:
		return "InvalidAccessKeyId.NotFound", ""
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", p.Get("Timestamp"))
	if err != nil || time.Since(ts) > 15*time.Minute || time.Until(ts) > 15*time.Minute {
		return "InvalidTimeStamp.Expired", ""
	}
	sts := stringToSign(r.Method, p)
	if !hmac.Equal([]byte(p.Get("Signature")), []byte(rpcSign(sts, f.sk))) {
		// The real service shows its string to sign, which the SDK compares.
		return "SignatureDoesNotMatch", " server string to sign is:" + sts
	}
	f.mu.Lock()
	used := f.nonces[p.Get("SignatureNonce")]
	f.nonces[p.Get("SignatureNonce")] = true
	f.mu.Unlock()
	if used {
		return "SignatureNonceUsed", ""
	}
	c.Action, c.RegionID = p.Get("Action"), p.Get("RegionId")
	if c.Action != "SubmitJobs" {
		return "InvalidAction.NotFound", ""
	}
	var in struct{ Bucket, Location, Object string }
	if json.Unmarshal([]byte(p.Get("Input")), &in) != nil || in.Bucket == "" || in.Location == "" || in.Object == "" {
		return "InvalidParameter.Input", ""
	}
	var outs []struct{ OutputObject, TemplateId, UserData string }
	if json.Unmarshal([]byte(p.Get("Outputs")), &outs) != nil || len(outs) == 0 || len(outs) > 30 ||
		outs[0].OutputObject == "" || outs[0].TemplateId == "" {
		return "InvalidParameter.Outputs", ""
	}
	c.PipelineID, c.OutputBucket, c.OutputLocation = p.Get("PipelineId"), p.Get("OutputBucket"), p.Get("OutputLocation")
	switch {
	case c.PipelineID == "":
		return "InvalidParameter.PipelineId", ""
	case c.OutputBucket == "" || c.OutputLocation == "":
		return "InvalidParameter.OutputBucket", ""
	}
	c.InputBucket, c.InputLocation, c.RawInputObject = in.Bucket, in.Location, in.Object
	c.TemplateID, c.UserData = outs[0].TemplateId, outs[0].UserData
	var ok1, ok2 bool
	c.InputObject, ok1 = decodeKey(in.Object)
	c.OutputObject, ok2 = decodeKey(outs[0].OutputObject)
	if !ok1 || !ok2 {
		return "InvalidParameter.ObjectKey", ""
	}
	return "", ""
}

// decodeKey undoes MPS's RFC 3986 key encoding. A raw space or plus, or a
// percent sign that is not an escape, means the key was not encoded.
func decodeKey(s string) (string, bool) {
	if strings.ContainsAny(s, " +") {
		return "", false
	}
	k, err := url.PathUnescape(s)
	return k, err == nil
}

// stringToSign builds the RPC string to sign from the received parameters.
func stringToSign(method string, p url.Values) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = percentEncode(k) + "=" + percentEncode(p.Get(k))
	}
	return method + "&" + percentEncode("/") + "&" + percentEncode(strings.Join(pairs, "&"))
}

func rpcSign(stringToSign, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// percentEncode is RFC 3986 encoding: only A-Z a-z 0-9 - _ . ~ stay.
func percentEncode(s string) string {
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

// jobReply is SubmitJobs' 200 answer for one output.
func jobReply(c mpsCall, success bool, code, msg string) map[string]any {
	state := "Submitted"
	if !success {
		state = "Fail"
	}
	return map[string]any{
		"RequestId": c.RequestID,
		"JobResultList": map[string]any{"JobResult": []any{map[string]any{
			"Success": success, "Code": code, "Message": msg,
			"Job": map[string]any{
				"JobId": c.JobID, "State": state, "PipelineId": c.PipelineID, "Percent": 0,
				"CreationTime": "2024-05-01T12:00:01Z",
				"Input":        map[string]any{"Bucket": c.InputBucket, "Location": c.InputLocation, "Object": c.RawInputObject},
				"Output": map[string]any{
					"TemplateId": c.TemplateID, "UserData": c.UserData,
					"OutputFile": map[string]any{"Bucket": c.OutputBucket, "Location": c.OutputLocation, "Object": url.PathEscape(c.OutputObject)},
				},
			},
		}}},
	}
}

// writeRPCError answers in the RPC error format.
func writeRPCError(w http.ResponseWriter, status int, code, msg, requestID string) {
	writeJSON(w, status, map[string]any{
		"RequestId": requestID,
		"HostId":    "mts.cn-shanghai.aliyuncs.com",
		"Code":      code,
		"Message":   msg,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + code + "&product=Mts",
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
