// Package livetest is a fake of the ApsaraVideo Live API's two listings of
// the callbacks Aliyun sent (DescribeLiveRecordNotifyRecords and
// DescribeLiveStreamsNotifyRecords), for tests. It checks what the service
// checks: the RPC signature and common parameters (rpctest), the action and
// version, the domain, the time range (UTC, yyyy-MM-ddTHH:mm:ssZ, end after
// start, start within 7 days), the page (PageSize 1-500, PageNumber
// 1-100000) and the rate (100 calls a second); and it answers as the
// service answers, failures included, a page at a time.
package livetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/livehook/livehook/internal/alicloud/rpctest"
)

// The listings.
const (
	RecordAction = "DescribeLiveRecordNotifyRecords"
	StreamAction = "DescribeLiveStreamsNotifyRecords"
)

const apiTime = "2006-01-02T15:04:05Z"

var endpoint = rpctest.Endpoint{Host: "live.aliyuncs.com", Product: "live"}

// refusals are the refusals of the listings beyond rpctest.Common, as the
// Live and CDN APIs document them.
var refusals = map[string]rpctest.Reply{
	"InvalidStartTime.Malformed":         {Status: http.StatusBadRequest, Message: "Specified StartTime is malformed."},
	"InvalidEndTime.Malformed":           {Status: http.StatusBadRequest, Message: "Specified EndTime is malformed."},
	"InvalidEndTime.Mismatch":            {Status: http.StatusBadRequest, Message: "Specified EndTime does not match the specified StartTime."},
	"InvalidStartTime.ValueNotSupported": {Status: http.StatusBadRequest, Message: "The specified value of parameter StartTime is not supported."},
	"InvalidDomain.NotFound":             {Status: http.StatusNotFound, Message: "The domain provided does not exist in our records."},
}

// Record is one callback as the service keeps it.
type Record struct {
	App, Stream string
	Content     string              // NotifyContent: the callback as sent
	Header      map[string][]string // NotifyHeader; nil leaves it out, as older replies do
	Result      string              // success or failed; default success
	Type        string              // NotifyType, e.g. file_created, publish
	Time        time.Time           // NotifyTime
}

// Call is one request as the fake understood it.
type Call struct {
	Action, Domain       string
	Start, End           string
	PageSize, PageNumber int
	Rejected             string // the code the fake refused it with, if it did
}

// Server is the fake endpoint.
type Server struct {
	*httptest.Server
	rpc   *rpctest.Service
	limit *rate.Limiter

	mu      sync.Mutex
	records map[string][]Record // by action and domain
	calls   []Call
	seq     int
	fail    map[int]string // scripted refusals, by call number
}

// New starts a fake that takes requests signed with ak and sk, knowing the
// domains given: the other domains are not the account's.
func New(t testing.TB, ak, sk string, domains ...string) *Server {
	s := &Server{
		rpc:     &rpctest.Service{Endpoint: endpoint, AccessKeyID: ak, AccessKeySecret: sk, Version: "2016-11-01"},
		limit:   rate.NewLimiter(100, 100),
		records: map[string][]Record{},
		fail:    map[int]string{},
	}
	for _, d := range domains {
		s.records[RecordAction+" "+d] = nil
		s.records[StreamAction+" "+d] = nil
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Add keeps a record of a callback for domain, in the listing action.
func (s *Server) Add(action, domain string, r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Result == "" {
		r.Result = "success"
	}
	s.records[action+" "+domain] = append(s.records[action+" "+domain], r)
}

// FailCall makes the nth call from now (1 is the next) fail with code,
// one of rpctest.Common's or the listings' own.
func (s *Server) FailCall(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[s.seq+n] = code
}

// Calls returns the requests so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seq++
	n, scripted := s.seq, s.fail[s.seq]
	s.mu.Unlock()
	requestID := fmt.Sprintf("5C0FA3B1-2D3E-4F5A-8B9C-%012d", n)
	c, refusal := s.check(r)
	if refusal == nil && scripted != "" {
		refusal = &rpctest.Refusal{Code: scripted}
	}
	if refusal != nil {
		c.Rejected = refusal.Code
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	if refusal != nil {
		reply, ok := refusals[refusal.Code]
		if !ok {
			reply = rpctest.Common[refusal.Code]
		}
		endpoint.WriteError(w, reply, refusal.Code, refusal.Detail, requestID)
		return
	}
	rpctest.WriteJSON(w, http.StatusOK, s.page(c, requestID))
}

// check returns the call and the refusal the service would answer it with.
func (s *Server) check(r *http.Request) (Call, *rpctest.Refusal) {
	if !s.limit.Allow() {
		return Call{}, &rpctest.Refusal{Code: "Throttling.User"}
	}
	p, refusal := s.rpc.Check(r)
	if refusal != nil {
		return Call{}, refusal
	}
	c := Call{Action: p.Get("Action"), Domain: p.Get("DomainName"), Start: p.Get("StartTime"), End: p.Get("EndTime")}
	if c.Action != RecordAction && c.Action != StreamAction {
		return c, &rpctest.Refusal{Code: "InvalidAction.NotFound"}
	}
	for _, k := range []string{"DomainName", "StartTime", "EndTime"} {
		if p.Get(k) == "" {
			return c, &rpctest.Refusal{Code: "MissingParameter", Detail: " " + k}
		}
	}
	var err error
	if c.PageSize, err = intParam(p.Get("PageSize"), 20); err != nil || c.PageSize < 1 || c.PageSize > 500 {
		return c, &rpctest.Refusal{Code: "InvalidParameter", Detail: " PageSize: an integer from 1 to 500"}
	}
	if c.PageNumber, err = intParam(p.Get("PageNumber"), 1); err != nil || c.PageNumber < 1 || c.PageNumber > 100_000 {
		return c, &rpctest.Refusal{Code: "InvalidParameter", Detail: " PageNumber: an integer from 1 to 100000"}
	}
	start, err := time.Parse(apiTime, c.Start)
	if err != nil {
		return c, &rpctest.Refusal{Code: "InvalidStartTime.Malformed"}
	}
	end, err := time.Parse(apiTime, c.End)
	switch {
	case err != nil:
		return c, &rpctest.Refusal{Code: "InvalidEndTime.Malformed"}
	case !end.After(start):
		return c, &rpctest.Refusal{Code: "InvalidEndTime.Mismatch"}
	case time.Since(start) > 7*24*time.Hour:
		return c, &rpctest.Refusal{Code: "InvalidStartTime.ValueNotSupported"}
	}
	s.mu.Lock()
	_, known := s.records[c.Action+" "+c.Domain]
	s.mu.Unlock()
	if !known {
		return c, &rpctest.Refusal{Code: "InvalidDomain.NotFound"}
	}
	return c, nil
}

func intParam(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	return strconv.Atoi(v)
}

// page is the reply to an accepted call. The service does not document
// the order of the records: the fake lists the newest first.
func (s *Server) page(c Call, requestID string) map[string]any {
	start, _ := time.Parse(apiTime, c.Start)
	end, _ := time.Parse(apiTime, c.End)
	s.mu.Lock()
	var in []Record
	for _, r := range s.records[c.Action+" "+c.Domain] {
		if !r.Time.Before(start) && !r.Time.After(end) {
			in = append(in, r)
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(in, func(a, b Record) int { return b.Time.Compare(a.Time) })
	total := len(in)
	lo := min((c.PageNumber-1)*c.PageSize, total)
	hi := min(lo+c.PageSize, total)
	items := []map[string]any{}
	for _, r := range in[lo:hi] {
		item := map[string]any{
			"AppName": r.App, "StreamName": r.Stream, "DomainName": c.Domain,
			"NotifyContent": r.Content, "NotifyResult": r.Result, "NotifyType": r.Type,
			"NotifyTime": r.Time.UTC().Format(apiTime), "NotifyUrl": "http://hooks.example.com/callbacks",
			"Description": "success",
		}
		if r.Result != "success" {
			item["Description"] = "connect timeout"
		}
		if r.Header != nil {
			h, _ := json.Marshal(r.Header) // strings only: cannot fail
			item["NotifyHeader"] = string(h)
		}
		items = append(items, item)
	}
	out := map[string]any{
		"RequestId": requestID, "PageNum": c.PageNumber, "PageSize": c.PageSize,
		"TotalNum": total, "TotalPage": (total + c.PageSize - 1) / c.PageSize,
	}
	if c.Action == RecordAction {
		out["Code"], out["Msg"], out["CallbackList"] = 0, "ok", items
	} else {
		out["NotifyRecordsInfo"] = map[string]any{"LiveStreamNotifyRecordsInfo": items}
	}
	return out
}
