package rpctest_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/live"

	"github.com/livehook/livehook/internal/alicloud/rpctest"
)

const (
	testAK = "LTAI5tRpcTestKeyId01"
	testSK = "s3cr3t-rpc-key-never-shown-01"
)

// server answers every request that passes the checks with {} and keeps
// what it saw.
type server struct {
	*httptest.Server
	svc *rpctest.Service

	mu       sync.Mutex
	params   []url.Values
	refusals []string
}

func newServer(t *testing.T) *server {
	s := &server{svc: &rpctest.Service{Endpoint: rpctest.Endpoint{Host: "live.aliyuncs.com", Product: "live"},
		AccessKeyID: testAK, AccessKeySecret: testSK, Version: "2016-11-01"}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, refused := s.svc.Check(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		if refused != nil {
			s.refusals = append(s.refusals, refused.Code)
			s.svc.WriteError(w, rpctest.Common[refused.Code], refused.Code, refused.Detail, "REQ-1")
			return
		}
		s.params = append(s.params, p)
		rpctest.WriteJSON(w, http.StatusOK, map[string]any{"RequestId": "REQ-1"})
	}))
	t.Cleanup(s.Close)
	return s
}

// call sends one DescribeLiveRecordNotifyRecords built, signed and sent
// by the official SDK, and returns the request as the SDK signed it.
func call(t *testing.T, s *server, secret string) (*live.DescribeLiveRecordNotifyRecordsRequest, error) {
	t.Helper()
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false
	client, err := live.NewClientWithOptions("cn-shanghai", cfg, &credentials.AccessKeyCredential{AccessKeyId: testAK, AccessKeySecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	req := live.CreateDescribeLiveRecordNotifyRecordsRequest()
	req.Scheme, req.Domain = "HTTP", strings.TrimPrefix(s.URL, "http://")
	req.DomainName = "play.example.com"
	req.StartTime, req.EndTime = "2024-05-01T00:00:00Z", "2024-05-01T12:00:00Z"
	req.PageSize, req.PageNumber = "500", "1"
	req.StreamName = "room 42/*~+" // every character RFC 3986 and the SDK treat specially
	_, err = client.DescribeLiveRecordNotifyRecords(req)
	return req, err
}

// TestAgreesWithSDK holds the checks to the official SDK's own request
// building: a request it signs passes, with the string to sign the SDK
// computed; one signed with another secret, or sent again, does not.
func TestAgreesWithSDK(t *testing.T) {
	s := newServer(t)
	req, err := call(t, s, testSK)
	if err != nil {
		t.Fatalf("a request the SDK signed was refused: %v", err)
	}
	if len(s.params) != 1 {
		t.Fatalf("accepted %d requests, want 1", len(s.params))
	}
	p := s.params[0]
	if got, want := rpctest.StringToSign(http.MethodPost, p), req.GetStringToSign(); got != want {
		t.Errorf("string to sign:\n got %s\nwant %s (the SDK's)", got, want)
	}
	for k, want := range map[string]string{"Action": "DescribeLiveRecordNotifyRecords", "Version": "2016-11-01",
		"DomainName": "play.example.com", "StreamName": "room 42/*~+", "PageSize": "500", "RegionId": "cn-shanghai"} {
		if p.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, p.Get(k), want)
		}
	}

	_, err = call(t, s, "another-secret")
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) || se.ErrorCode() != "SignatureDoesNotMatch" || se.HttpStatus() != http.StatusBadRequest {
		t.Errorf("signed with another secret: err = %v, want SignatureDoesNotMatch", err)
	}
	if err != nil && strings.Contains(err.Error(), "another-secret") {
		t.Errorf("the refusal shows the secret: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	s := newServer(t)
	signed := func(mutate func(url.Values)) url.Values {
		p := url.Values{"Format": {"JSON"}, "Version": {"2016-11-01"}, "AccessKeyId": {testAK},
			"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"}, "SignatureNonce": {"n-" + t.Name()},
			"Timestamp": {"2099-01-01T00:00:00Z"}, "Action": {"DescribeLiveStreamsNotifyRecords"}}
		mutate(p)
		p.Set("Signature", rpctest.Sign(rpctest.StringToSign(http.MethodGet, p), testSK))
		return p
	}
	cases := []struct {
		name   string
		mutate func(url.Values)
		want   string
	}{
		{"no action", func(p url.Values) { p.Del("Action") }, "MissingParameter"},
		{"old version", func(p url.Values) { p.Set("Version", "2014-06-18") }, "InvalidVersion"},
		{"sha256", func(p url.Values) { p.Set("SignatureMethod", "HMAC-SHA256") }, "UnsupportedSignatureMethod"},
		{"unknown key", func(p url.Values) { p.Set("AccessKeyId", "LTAIother") }, "InvalidAccessKeyId.NotFound"},
		{"far future", func(url.Values) {}, "InvalidTimeStamp.Expired"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(s.URL + "/?" + signed(tt.mutate).Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			s.mu.Lock()
			got := s.refusals[len(s.refusals)-1]
			s.mu.Unlock()
			if got != tt.want || resp.StatusCode != rpctest.Common[tt.want].Status {
				t.Errorf("refused with %s (HTTP %d), want %s", got, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestNonceIsUsedOnce(t *testing.T) {
	s := newServer(t)
	p := url.Values{"Format": {"JSON"}, "Version": {"2016-11-01"}, "AccessKeyId": {testAK},
		"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"}, "SignatureNonce": {"once"},
		"Timestamp": {time.Now().UTC().Format("2006-01-02T15:04:05Z")}, "Action": {"DescribeLiveStreamsNotifyRecords"}}
	p.Set("Signature", rpctest.Sign(rpctest.StringToSign(http.MethodGet, p), testSK))
	for i, want := range []int{http.StatusOK, http.StatusBadRequest} {
		resp, err := http.Get(s.URL + "/?" + p.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("request %d: HTTP %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	if len(s.refusals) != 1 || s.refusals[0] != "SignatureNonceUsed" {
		t.Errorf("refusals = %v, want [SignatureNonceUsed]", s.refusals)
	}
}
