// Package aliyunondemand is ApsaraVideo Live's on-demand recording
// callback: with a recording template set to on-demand, Live asks the
// OnDemandUrl (AddLiveRecordNotifyConfig), with a GET to
// /callbacks/ondemand, whether to record each stream pushed, and records
// as the answer says. The rules' answer: decides it when the callback is
// accepted (see engine/rules), and the reply is that answer in Live's
// format.
package aliyunondemand

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
		Name:    event.SourceOnDemand,
		Doc:     "on-demand recording callbacks",
		Path:    "/callbacks/ondemand",
		Methods: []string{http.MethodGet},
		Decode:  func(r *sourceapi.Request) (*event.Event, error) { return event.DecodeOnDemand(r.Query) },
		// The question has no time of its own: a retry repeats the query
		// and, when Live signs it, ALI-LIVE-TIMESTAMP.
		Identity: func(r *sourceapi.Request, _ *event.Event) string {
			return identity.Query(event.SourceOnDemand, r, auth.HeaderAliTimestamp)
		},
		// A stream pushed again is asked about again: remembered only a
		// little longer than retries last.
		Window: func(_ *event.Event, w sourceapi.Windows) time.Duration { return w.Status },
		// The key is the recording callbacks' (AddLiveRecordNotifyConfig),
		// signed, as theirs, over the host of the callback URL.
		Auth:    "aliyun_signature",
		Reply:   func(ev *event.Event, _ string) any { return Reply(ev.Answer) },
		Fixture: queryfile.Fixture, // a JSON object of the query parameters
	})
}

// Answer is the body Live reads, at most 2048 bytes of it.
type Answer struct {
	APIVersion string `json:"ApiVersion"`
	NeedRecord bool   `json:"NeedRecord"`
	// Interval is the recording cycle in seconds by format, keyed as Live
	// spells them (Mp4, Flv, M3U8).
	Interval map[string]int64 `json:"Interval,omitempty"`
	// Format narrows the configured formats. Left out when the answer
	// names none: an empty list would mean none is recorded.
	Format []string `json:"Format,omitempty"`
}

// intervalKeys are Live's names of the formats in Interval.
var intervalKeys = map[string]string{"mp4": "Mp4", "flv": "Flv", "m3u8": "M3U8"}

// Reply is a's answer in Live's format. A stream not to be recorded gets
// only NeedRecord.
func Reply(a event.Answer) Answer {
	out := Answer{APIVersion: "1.0", NeedRecord: a.NeedRecord}
	if !a.NeedRecord {
		return out
	}
	out.Format = a.Formats
	for f, secs := range a.Interval {
		if k, ok := intervalKeys[f]; ok {
			if out.Interval == nil {
				out.Interval = map[string]int64{}
			}
			out.Interval[k] = secs
		}
	}
	return out
}
