// Package aliyunstream is ApsaraVideo Live's stream callback: Aliyun calls
// /callbacks/stream with a GET when a stream is published (action=publish)
// and when it stops (action=publish_done), configured on the ingest domain
// (SetLiveStreamsNotifyUrlConfig).
package aliyunstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/sources/internal/identity"
)

func init() {
	sourceapi.Register(sourceapi.Source{
		Name:    event.SourceStream,
		Doc:     "stream publish and interruption callbacks",
		Path:    "/callbacks/stream",
		Methods: []string{http.MethodGet},
		Decode:  func(r *sourceapi.Request) (*event.Event, error) { return event.DecodeStream(r.Query) },
		// The whole query and ALI-LIVE-TIMESTAMP: a retry repeats both, and
		// time, in the query, tells two publishes of one stream apart.
		Identity: func(r *sourceapi.Request, _ *event.Event) string {
			return identity.Query(event.SourceStream, r, auth.HeaderAliTimestamp)
		},
		// A stream can genuinely be published again: remembered only a
		// little longer than Aliyun's retries last.
		Window: func(_ *event.Event, w sourceapi.Windows) time.Duration { return w.Status },
		// Signed over the ingest domain the callback is configured on, which
		// is therefore the callback_host of its sources: entry.
		Auth:    "aliyun_signature",
		Fixture: fixture,
	})
}

// fixture reads an event file as a JSON object of the callback's query
// parameters, {"action": "publish", "id": "room42", ...}; numbers are sent
// as written.
func fixture(name string, file []byte) (*sourceapi.Request, error) {
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.UseNumber()
	var params map[string]any
	if err := dec.Decode(&params); err != nil || params == nil {
		return nil, errors.New("want a JSON object of the query parameters, such as {\"action\": \"publish\", \"id\": \"room42\"}")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("want one JSON object of the query parameters, and nothing after it")
	}
	q := url.Values{}
	for k, v := range params {
		switch v := v.(type) {
		case string:
			q.Set(k, v)
		case json.Number:
			q.Set(k, v.String())
		default:
			return nil, fmt.Errorf("parameter %q: want a string or a number", k)
		}
	}
	return &sourceapi.Request{Name: name, Header: http.Header{}, Query: q}, nil
}
