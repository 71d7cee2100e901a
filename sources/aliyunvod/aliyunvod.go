// Package aliyunvod is ApsaraVideo VOD's event notification (HTTP
// callback): VOD POSTs every event of a region, such as
// AddLiveRecordVideoComplete when a live recording becomes a VOD video, to
// one URL, /callbacks/vod here.
package aliyunvod

import (
	"net/http"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/sources/internal/identity"
)

func init() {
	sourceapi.Register(sourceapi.Source{
		Name:    event.SourceVOD,
		Doc:     "ApsaraVideo VOD event notifications",
		Path:    "/callbacks/vod",
		Methods: []string{http.MethodPost},
		// Signed over the whole callback URL (X-VOD-SIGNATURE) when
		// callback authentication is on in VOD.
		Auth:     "vod_signature",
		Decode:   func(r *sourceapi.Request) (*event.Event, error) { return event.DecodeVOD(r.Body) },
		Identity: identify,
		Window:   window,
	})
}

// identify: a video is added to VOD, or starts being composed, once, so
// those events are their video; any other is its body and timestamp.
func identify(r *sourceapi.Request, ev *event.Event) string {
	if byVideo(ev) {
		return sourceapi.Key(event.SourceVOD, ev.Event, ev.VideoID, ev.Status)
	}
	return identity.Body(event.SourceVOD, r, auth.HeaderVODTimestamp)
}

func window(ev *event.Event, w sourceapi.Windows) time.Duration {
	if byVideo(ev) {
		return w.File
	}
	return w.Status
}

func byVideo(ev *event.Event) bool {
	return ev.VideoID != "" && (ev.Event == event.VODLiveRecordComplete || ev.Event == event.VODLiveComposeStart)
}
