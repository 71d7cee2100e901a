package livetest_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/live"

	"github.com/livehook/livehook/internal/sweeper/livetest"
)

const (
	testAK = "LTAI5tLiveFakeKey001"
	testSK = "s3cr3t-live-fake-never-shown-01"
)

func client(t *testing.T, secret string) *live.Client {
	t.Helper()
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false
	c, err := live.NewClientWithOptions("cn-shanghai", cfg, &credentials.AccessKeyCredential{AccessKeyId: testAK, AccessKeySecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const apiTime = "2006-01-02T15:04:05Z"

// TestAnswersTheSDK: the official SDK's requests pass and its structs
// read the replies, page by page.
func TestAnswersTheSDK(t *testing.T) {
	f := livetest.New(t, testAK, testSK, "play.example.com", "push.example.com")
	now := time.Now().UTC()
	for i := range 3 {
		f.Add(livetest.RecordAction, "play.example.com", livetest.Record{App: "live", Stream: "room42", Type: "file_created",
			Content: `{"domain":"play.example.com"}`, Time: now.Add(-time.Duration(i+1) * time.Minute)})
	}
	f.Add(livetest.StreamAction, "push.example.com", livetest.Record{App: "live", Stream: "room42", Type: "publish",
		Content: `{"action":"publish"}`, Time: now.Add(-time.Minute), Header: map[string][]string{"User-Agent": {"Aliyun-Live"}}})
	host := strings.TrimPrefix(f.URL, "http://")

	req := live.CreateDescribeLiveRecordNotifyRecordsRequest()
	req.Scheme, req.Domain = "HTTP", host
	req.DomainName, req.StartTime, req.EndTime = "play.example.com", now.Add(-time.Hour).Format(apiTime), now.Format(apiTime)
	req.PageSize, req.PageNumber = requests.NewInteger(2), requests.NewInteger(2)
	resp, err := client(t, testSK).DescribeLiveRecordNotifyRecords(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TotalNum != 3 || resp.TotalPage != 2 || resp.PageNum != 2 || len(resp.CallbackList) != 1 ||
		resp.CallbackList[0].NotifyTime != now.Add(-3*time.Minute).Format(apiTime) || resp.CallbackList[0].NotifyType != "file_created" {
		t.Errorf("page 2 = %+v", resp)
	}

	sreq := live.CreateDescribeLiveStreamsNotifyRecordsRequest()
	sreq.Scheme, sreq.Domain = "HTTP", host
	sreq.DomainName, sreq.StartTime, sreq.EndTime = "push.example.com", now.Add(-time.Hour).Format(apiTime), now.Format(apiTime)
	sresp, err := client(t, testSK).DescribeLiveStreamsNotifyRecords(sreq)
	if err != nil {
		t.Fatal(err)
	}
	if got := sresp.NotifyRecordsInfo.LiveStreamNotifyRecordsInfo; sresp.TotalNum != 1 || len(got) != 1 || got[0].NotifyContent != `{"action":"publish"}` {
		t.Errorf("streams = %+v", sresp)
	}
	if c := f.Calls()[1]; c.PageSize != 20 || c.PageNumber != 1 {
		t.Errorf("without paging the API takes page 1 of 20: %+v", c)
	}
}

// TestRefusesAsTheService: what the listings refuse, as the SDK reports it.
func TestRefusesAsTheService(t *testing.T) {
	f := livetest.New(t, testAK, testSK, "play.example.com")
	host := strings.TrimPrefix(f.URL, "http://")
	now := time.Now().UTC()
	cases := []struct {
		name   string
		secret string
		edit   func(*live.DescribeLiveRecordNotifyRecordsRequest)
		code   string
		status int
	}{
		{"another secret", "other", func(*live.DescribeLiveRecordNotifyRecordsRequest) {}, "SignatureDoesNotMatch", http.StatusBadRequest},
		{"page too large", testSK, func(r *live.DescribeLiveRecordNotifyRecordsRequest) { r.PageSize = "501" }, "InvalidParameter", http.StatusBadRequest},
		{"page zero", testSK, func(r *live.DescribeLiveRecordNotifyRecordsRequest) { r.PageNumber = "0" }, "InvalidParameter", http.StatusBadRequest},
		{"local time", testSK, func(r *live.DescribeLiveRecordNotifyRecordsRequest) { r.StartTime = now.Format("2006-01-02 15:04:05") }, "InvalidStartTime.Malformed", http.StatusBadRequest},
		{"end before start", testSK, func(r *live.DescribeLiveRecordNotifyRecordsRequest) {
			r.EndTime = now.Add(-2 * time.Hour).Format(apiTime)
		}, "InvalidEndTime.Mismatch", http.StatusBadRequest},
		{"older than 7 days", testSK, func(r *live.DescribeLiveRecordNotifyRecordsRequest) {
			r.StartTime = now.Add(-8 * 24 * time.Hour).Format(apiTime)
		}, "InvalidStartTime.ValueNotSupported", http.StatusBadRequest},
		{"no domain", testSK, func(r *live.DescribeLiveRecordNotifyRecordsRequest) { r.DomainName = "" }, "MissingParameter", http.StatusBadRequest},
		{"not the account's", testSK, func(r *live.DescribeLiveRecordNotifyRecordsRequest) { r.DomainName = "other.example.com" }, "InvalidDomain.NotFound", http.StatusNotFound},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			req := live.CreateDescribeLiveRecordNotifyRecordsRequest()
			req.Scheme, req.Domain = "HTTP", host
			req.DomainName, req.StartTime, req.EndTime = "play.example.com", now.Add(-time.Hour).Format(apiTime), now.Format(apiTime)
			tt.edit(req)
			_, err := client(t, tt.secret).DescribeLiveRecordNotifyRecords(req)
			var se *sdkerrors.ServerError
			if !errors.As(err, &se) || se.ErrorCode() != tt.code || se.HttpStatus() != tt.status || se.RequestId() == "" {
				t.Errorf("err = %v, want %s (HTTP %d) with a RequestId", err, tt.code, tt.status)
			}
		})
	}
}
