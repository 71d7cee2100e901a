package protocol_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/livehook/livehook/plugins/protocol"
)

func TestDecodeResponse(t *testing.T) {
	many := `{"outcome":"delivered","events":[` + strings.TrimSuffix(strings.Repeat(`{},`, protocol.MaxEvents+1), ",") + `]}`
	tests := []struct {
		name    string
		out     string
		want    protocol.Response
		wantErr string
	}{
		{name: "minimal", out: `{"outcome":"delivered"}`, want: protocol.Response{Outcome: protocol.Delivered}},
		{name: "everything, with white space around", out: "\n  {\"outcome\":\"retryable\",\"detail\":\"rate limited\",\"ids\":{\"job\":\"j1\"},\"retry_after\":1.5,\"events\":[{\"event\":\"x\"}]}\n\n",
			want: protocol.Response{Outcome: protocol.Retryable, Detail: "rate limited", IDs: map[string]string{"job": "j1"}, RetryAfter: 1.5,
				Events: []json.RawMessage{json.RawMessage(`{"event":"x"}`)}}},
		{name: "permanent", out: `{"outcome":"permanent","detail":"no such channel"}`, want: protocol.Response{Outcome: protocol.Permanent, Detail: "no such channel"}},
		{name: "nothing", out: "", wantErr: "no answer on stdout"},
		{name: "only white space", out: " \n\t", wantErr: "no answer on stdout"},
		{name: "not JSON", out: "ok", wantErr: "not a JSON answer: invalid character 'o'"},
		{name: "cut short", out: `{"outcome":"deliv`, wantErr: "not a JSON answer: unexpected EOF"},
		{name: "an array", out: `[]`, wantErr: "not a JSON answer: json: cannot unmarshal array"},
		{name: "null", out: `null`, wantErr: "invalid answer: no outcome"},
		{name: "unknown key", out: `{"outcome":"delivered","detial":"x"}`, wantErr: `not a JSON answer: json: unknown field "detial"`},
		{name: "two objects", out: `{"outcome":"delivered"}{"outcome":"delivered"}`, wantErr: "more after the JSON object"},
		{name: "unknown outcome", out: `{"outcome":"ok"}`, wantErr: `invalid answer: outcome "ok": want delivered, retryable or permanent`},
		{name: "negative retry_after", out: `{"outcome":"retryable","retry_after":-1}`, wantErr: "retry_after -1"},
		{name: "an event that is not an object", out: `{"outcome":"delivered","events":[{},"x"]}`, wantErr: "events[1]: want a JSON object"},
		{name: "too many events", out: many, wantErr: "101 events: at most 100"},
		{name: "an empty id key", out: `{"outcome":"delivered","ids":{"":"x"}}`, wantErr: "ids: an empty key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.DecodeResponse([]byte(tc.out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestRequestKeyOrder(t *testing.T) {
	b, err := json.Marshal(protocol.Request{Protocol: 1, Settings: json.RawMessage(`{}`), Params: json.RawMessage(`{}`), Event: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"protocol":1,"plugin":"","action":"","rule":"","delivery_id":"","timeout_ms":0,"settings":{},"params":{},"event":{}}`
	if string(b) != want {
		t.Errorf("request encodes as\n%s\nwant (docs/plugins.md promises this order)\n%s", b, want)
	}
}
