package sweeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/live"
	"golang.org/x/time/rate"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/internal/alicloud"
	"github.com/livehook/livehook/internal/textcut"
)

// The Live API's paging and time rules (docs/aliyun-callbacks.md,
// "Reading back missed callbacks").
const (
	MaxPageSize = 500 // the most records a page holds
	maxPage     = 100_000
	apiTime     = "2006-01-02T15:04:05Z" // StartTime, EndTime and NotifyTime: UTC
	// DefaultEndpoint is the Live API's endpoint for every region.
	DefaultEndpoint = "https://live.aliyuncs.com"
)

// record is one callback Aliyun says it sent, from either listing.
type record struct {
	source  string // whose callback it is: aliyun_live_record or aliyun_live_stream
	domain  string // the domain listed
	app     string
	stream  string
	content string      // NotifyContent: the callback as sent
	header  http.Header // NotifyHeader, when the reply has it
	result  string      // NotifyResult: success or failed
	typ     string      // NotifyType
	at      time.Time   // NotifyTime
	rawTime string
}

// liveAPI lists the records through the official SDK.
type liveAPI struct {
	region     string
	scheme     string // HTTPS or HTTP, as the SDK spells it
	host       string
	credential *credentials.AccessKeyCredential
	transport  http.RoundTripper
	timeout    time.Duration
	pageSize   int
	limit      *rate.Limiter // well inside the API's 100 calls a second per account
}

func newLiveAPI(cfg *rules.Sweeper, o *Options, limit *rate.Limiter) (*liveAPI, error) {
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := alicloud.ParseEndpoint(endpoint, DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	return &liveAPI{
		region:     cfg.Region,
		scheme:     strings.ToUpper(u.Scheme),
		host:       u.Host,
		credential: &credentials.AccessKeyCredential{AccessKeyId: cfg.Key.ID, AccessKeySecret: cfg.Key.Secret},
		transport:  o.Transport,
		timeout:    o.Timeout,
		pageSize:   o.PageSize,
		limit:      limit,
	}, nil
}

// list calls visit with every record of source's callbacks for domain
// sent between from and until, page by page.
func (a *liveAPI) list(ctx context.Context, source, domain string, from, until time.Time, visit func(record)) error {
	for page := 1; page <= maxPage; page++ {
		if err := a.limit.Wait(ctx); err != nil {
			return err
		}
		recs, totalPage, err := a.page(ctx, source, domain, from, until, page)
		if err != nil {
			return fmt.Errorf("%s %s, page %d: %w", action(source), domain, page, err)
		}
		for _, r := range recs {
			visit(r)
		}
		if len(recs) < a.pageSize || (totalPage > 0 && page >= totalPage) {
			return nil
		}
	}
	return fmt.Errorf("%s %s: more than %d pages", action(source), domain, maxPage)
}

func action(source string) string {
	if source == event.SourceStream {
		return "DescribeLiveStreamsNotifyRecords"
	}
	return "DescribeLiveRecordNotifyRecords"
}

// page asks for one page.
func (a *liveAPI) page(ctx context.Context, source, domain string, from, until time.Time, page int) ([]record, int, error) {
	var (
		recs      []record
		totalPage int
	)
	err := alicloud.Guard(func() error {
		client, err := a.client(ctx)
		if err != nil {
			return err
		}
		if source == event.SourceStream {
			req := live.CreateDescribeLiveStreamsNotifyRecordsRequest()
			req.Scheme, req.Domain = a.scheme, a.host
			req.DomainName, req.StartTime, req.EndTime = domain, from.UTC().Format(apiTime), until.UTC().Format(apiTime)
			req.PageSize, req.PageNumber = requests.NewInteger(a.pageSize), requests.NewInteger(page)
			resp, err := client.DescribeLiveStreamsNotifyRecords(req)
			if err != nil {
				return err
			}
			headers := streamHeaders(resp.GetHttpContentBytes())
			for i, c := range resp.NotifyRecordsInfo.LiveStreamNotifyRecordsInfo {
				recs = append(recs, newRecord(source, domain, c.AppName, c.StreamName, c.NotifyContent, headerAt(headers, i),
					c.NotifyResult, c.NotifyType, c.NotifyTime))
			}
			totalPage = resp.TotalPage
			return nil
		}
		req := live.CreateDescribeLiveRecordNotifyRecordsRequest()
		req.Scheme, req.Domain = a.scheme, a.host
		req.DomainName, req.StartTime, req.EndTime = domain, from.UTC().Format(apiTime), until.UTC().Format(apiTime)
		req.PageSize, req.PageNumber = requests.NewInteger(a.pageSize), requests.NewInteger(page)
		resp, err := client.DescribeLiveRecordNotifyRecords(req)
		if err != nil {
			return err
		}
		if resp.Code != 0 { // documented as the error code, 0 when the listing worked
			return fmt.Errorf("code %d: %s (RequestId %s)", resp.Code, textcut.Truncate(resp.Msg, 512), resp.RequestId)
		}
		headers := recordHeaders(resp.GetHttpContentBytes())
		for i, c := range resp.CallbackList {
			recs = append(recs, newRecord(source, domain, c.AppName, c.StreamName, c.NotifyContent, headerAt(headers, i),
				c.NotifyResult, c.NotifyType, c.NotifyTime))
		}
		totalPage = resp.TotalPage
		return nil
	})
	return recs, totalPage, describe(err)
}

// client makes an SDK client for one call: the SDK rewrites its
// http.Client's timeout on every call, and a fresh one costs a few
// allocations.
func (a *liveAPI) client(ctx context.Context) (*live.Client, error) {
	cfg := sdk.NewConfig()
	cfg.AutoRetry = false // a failed sweep is retried whole, at the next one
	cfg.Timeout = a.timeout
	cfg.Transport = alicloud.WithContext(ctx, a.transport)
	return live.NewClientWithOptions(a.region, cfg, a.credential)
}

func newRecord(source, domain, app, stream, content string, header http.Header, result, typ, at string) record {
	r := record{source: source, domain: domain, app: app, stream: stream, content: content, header: header,
		result: result, typ: typ, rawTime: at}
	r.at, _ = time.Parse(time.RFC3339, at) // a zero time is refused where the record is read
	return r
}

// The SDK's structs lack NotifyHeader, which newer replies carry (the
// callback's request headers, as a JSON object of lists or a string of
// one): it is read from the reply itself. Nil when it cannot be.
func recordHeaders(body []byte) []json.RawMessage {
	var v struct {
		CallbackList []struct{ NotifyHeader json.RawMessage }
	}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	out := make([]json.RawMessage, len(v.CallbackList))
	for i, c := range v.CallbackList {
		out[i] = c.NotifyHeader
	}
	return out
}

func streamHeaders(body []byte) []json.RawMessage {
	var v struct {
		NotifyRecordsInfo struct {
			LiveStreamNotifyRecordsInfo []struct{ NotifyHeader json.RawMessage }
		}
	}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	out := make([]json.RawMessage, len(v.NotifyRecordsInfo.LiveStreamNotifyRecordsInfo))
	for i, c := range v.NotifyRecordsInfo.LiveStreamNotifyRecordsInfo {
		out[i] = c.NotifyHeader
	}
	return out
}

// headerAt decodes the i-th NotifyHeader: an object whose values are
// lists of strings or strings, possibly inside a JSON string. Nil when
// absent or unreadable.
func headerAt(all []json.RawMessage, i int) http.Header {
	if i >= len(all) || len(all[i]) == 0 {
		return nil
	}
	raw := []byte(all[i])
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil
	}
	h := http.Header{}
	for k, v := range m {
		var list []string
		var one string
		switch {
		case json.Unmarshal(v, &list) == nil:
			for _, x := range list {
				h.Add(k, x)
			}
		case json.Unmarshal(v, &one) == nil:
			h.Add(k, one)
		}
	}
	return h
}

// describe says what went wrong without the signed query (AccessKey id,
// signature) a transport error's URL carries.
func describe(err error) error {
	if err == nil {
		return nil
	}
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		if se.ErrorCode() == "" { // not the API's JSON: a proxy or gateway spoke
			return fmt.Errorf("HTTP %d: %s", se.HttpStatus(), textcut.Truncate(strings.TrimSpace(se.Message()), 512))
		}
		return fmt.Errorf("HTTP %d: %s: %s (RequestId %s)", se.HttpStatus(), se.ErrorCode(), textcut.Truncate(se.Message(), 512), se.RequestId())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New(alicloud.TransportDetail(ue))
	}
	return err
}

// unixString is t as ALI-LIVE-TIMESTAMP writes it.
func unixString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
