package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/plugins/protocol"
	"github.com/livehook/livehook/plugins/sdk"
)

const request = `{"protocol":1,"plugin":"p","action":"oncall","rule":"failed","delivery_id":"ev1.failed.0","timeout_ms":5000,` +
	`"settings":{"url":"https://x","n":2},"params":{"text":"room42 failed"},"event":{"id":"ev1","stream":"room42"}}`

func run(t *testing.T, in string, h sdk.Handler) (protocol.Response, bool) {
	t.Helper()
	var out bytes.Buffer
	called := false
	err := sdk.Run(context.Background(), strings.NewReader(in), &out, func(ctx context.Context, req *sdk.Request) sdk.Response {
		called = true
		return h(ctx, req)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(out.Bytes(), []byte("}\n")) || bytes.Count(out.Bytes(), []byte("\n")) != 1 {
		t.Errorf("output %q, want one JSON line", out.String())
	}
	resp, err := protocol.DecodeResponse(out.Bytes())
	if err != nil {
		t.Fatalf("the answer does not decode: %v\n%s", err, out.String())
	}
	return resp, called
}

func TestRunHandsTheRequestToTheHandler(t *testing.T) {
	resp, _ := run(t, request, func(ctx context.Context, req *sdk.Request) sdk.Response {
		var s struct {
			URL string `json:"url"`
			N   int    `json:"n"`
		}
		var p struct {
			Text string `json:"text"`
		}
		var ev struct {
			Stream string `json:"stream"`
		}
		if err := errors.Join(req.DecodeSettings(&s), req.DecodeParams(&p), req.DecodeEvent(&ev)); err != nil {
			return sdk.Permanent("decode: %v", err)
		}
		if req.Plugin != "p" || req.Action != "oncall" || req.Rule != "failed" || req.DeliveryID != "ev1.failed.0" ||
			req.Timeout != 5*time.Second || s.URL != "https://x" || s.N != 2 || p.Text != "room42 failed" || ev.Stream != "room42" {
			return sdk.Permanent("got %+v %+v %+v %+v", req, s, p, ev)
		}
		r := sdk.Retryable("rate limited")
		r.IDs = map[string]string{"job": "j1"}
		r.RetryAfter = 1500 * time.Millisecond
		r.Events = []any{map[string]any{"event": "queued"}, struct {
			Event string `json:"event"`
		}{"second"}}
		return r
	})
	want := protocol.Response{Outcome: protocol.Retryable, Detail: "rate limited", IDs: map[string]string{"job": "j1"}, RetryAfter: 1.5,
		Events: []json.RawMessage{json.RawMessage(`{"event":"queued"}`), json.RawMessage(`{"event":"second"}`)}}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("answer %+v\nwant %+v", resp, want)
	}
}

func TestRunAnswersPermanentWhenItCannot(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		h          sdk.Handler
		wantDetail string
		wantCalled bool
	}{
		{name: "request not JSON", in: "hello", wantDetail: "request is not JSON: invalid character 'h'"},
		{name: "other protocol version", in: `{"protocol":2}`, wantDetail: "protocol 2: this plugin speaks 1"},
		{name: "no request at all", in: "", wantDetail: "request is not JSON: unexpected end of JSON input"},
		{name: "handler panics", in: request, wantCalled: true, wantDetail: "plugin panic: boom",
			h: func(context.Context, *sdk.Request) sdk.Response { panic("boom") }},
		{name: "handler gives no outcome", in: request, wantCalled: true, wantDetail: "plugin answer: no outcome",
			h: func(context.Context, *sdk.Request) sdk.Response { return sdk.Response{Detail: "x"} }},
		{name: "follow-up that is not an object", in: request, wantCalled: true, wantDetail: "plugin answer: events[0]: want a JSON object",
			h: func(context.Context, *sdk.Request) sdk.Response {
				r := sdk.Delivered("ok")
				r.Events = []any{"x"}
				return r
			}},
		{name: "follow-up that does not marshal", in: request, wantCalled: true, wantDetail: "follow-up event 0: json: unsupported type",
			h: func(context.Context, *sdk.Request) sdk.Response {
				r := sdk.Delivered("ok")
				r.Events = []any{make(chan int)}
				return r
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h == nil {
				h = func(context.Context, *sdk.Request) sdk.Response { return sdk.Delivered("ok") }
			}
			resp, called := run(t, tc.in, h)
			if resp.Outcome != protocol.Permanent || !strings.HasPrefix(resp.Detail, tc.wantDetail) || called != tc.wantCalled {
				t.Errorf("answer %+v (handler called: %v), want permanent %q (called: %v)", resp, called, tc.wantDetail, tc.wantCalled)
			}
		})
	}
}

func TestHandlerContextEndsBeforeTheKill(t *testing.T) {
	var deadline time.Time
	before := time.Now()
	run(t, strings.Replace(request, `"timeout_ms":5000`, `"timeout_ms":2000`, 1), func(ctx context.Context, _ *sdk.Request) sdk.Response {
		deadline, _ = ctx.Deadline()
		return sdk.Delivered("ok")
	})
	after := time.Now()
	// A tenth of the 2s timeout is kept back to answer.
	if deadline.Before(before.Add(1800*time.Millisecond)) || deadline.After(after.Add(1800*time.Millisecond)) {
		t.Errorf("deadline %s after the start, want 1.8s", deadline.Sub(before))
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestRunReportsAnAnswerItCannotWrite(t *testing.T) {
	err := sdk.Run(context.Background(), strings.NewReader(request), failingWriter{},
		func(context.Context, *sdk.Request) sdk.Response { return sdk.Delivered("ok") })
	if err == nil || !strings.Contains(err.Error(), "write answer: broken pipe") {
		t.Errorf("error %v, want write answer: broken pipe", err)
	}
}
