// Package aliyunstream is ApsaraVideo Live's stream callback: Aliyun calls
// /callbacks/stream with a GET when a stream is published (action=publish)
// and when it stops (action=publish_done), configured on the ingest domain
// (SetLiveStreamsNotifyUrlConfig).
package aliyunstream

import (
	"net/http"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/sources/internal/identity"
	"github.com/livehook/livehook/sources/internal/queryfile"
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
		Fixture: queryfile.Fixture, // a JSON object of the query parameters
	})
}
