package mps

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/livehook/livehook/internal/alicloud/rpctest"
)

// fakeMPS is an MTS RPC endpoint. It checks what the service checks before
// it queues a job: the common parameters, the AccessKey id, the timestamp
// window, nonce reuse and the HMAC-SHA1 signature (rpctest, which
// recomputes it from the RPC signing rules rather than with the SDK's
// code); then SubmitJobs' own parameters, decoding the URL-encoded keys.
// It answers in MPS's JSON, failures included; reply scripts the answer to
// a request that passed.
type fakeMPS struct {
	*httptest.Server
	rpc *rpctest.Service

	mu    sync.Mutex
	seq   int
	calls []mpsCall
	reply func(w http.ResponseWriter, r *http.Request, c mpsCall)
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
	f := &fakeMPS{rpc: &rpctest.Service{Endpoint: mpsEndpoint, AccessKeyID: ak, AccessKeySecret: sk, Version: "2014-06-18"}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMPS) Calls() []mpsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mpsCall(nil), f.calls...)
}

var mpsEndpoint = rpctest.Endpoint{Host: "mts.cn-shanghai.aliyuncs.com", Product: "Mts"}

// rpcErrors are the statuses and messages MPS answers for its own codes;
// the rest are rpctest.Common.
var rpcErrors = map[string]rpctest.Reply{
	"InvalidParameter.Outputs":      {Status: http.StatusBadRequest, Message: "The parameter \"Outputs\" is invalid."},
	"InvalidParameter.Input":        {Status: http.StatusBadRequest, Message: "The parameter \"Input\" is invalid."},
	"InvalidParameter.ObjectKey":    {Status: http.StatusBadRequest, Message: "The object key is not correctly URL-encoded."},
	"InvalidParameter.PipelineId":   {Status: http.StatusBadRequest, Message: "The parameter \"PipelineId\" is empty."},
	"InvalidParameter.OutputBucket": {Status: http.StatusBadRequest, Message: "The parameter \"OutputBucket\" is empty."},
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
		e, ok := rpcErrors[c.Rejected]
		if !ok {
			e = rpctest.Common[c.Rejected]
		}
		mpsEndpoint.WriteError(w, e, c.Rejected, detail, c.RequestID)
	case reply != nil:
		reply(w, r, c)
	default:
		writeJSON(w, http.StatusOK, jobReply(c, true, "", ""))
	}
}

// check returns the error code MPS would refuse the request with, and any
// text MPS appends to that code's message.
func (f *fakeMPS) check(r *http.Request, c *mpsCall) (string, string) {
	p, refused := f.rpc.Check(r)
	if refused != nil {
		return refused.Code, refused.Detail
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
	mpsEndpoint.WriteError(w, rpctest.Reply{Status: status, Message: msg}, code, "", requestID)
}

func writeJSON(w http.ResponseWriter, status int, v any) { rpctest.WriteJSON(w, status, v) }
