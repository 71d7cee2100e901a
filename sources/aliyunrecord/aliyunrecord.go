// Package aliyunrecord is ApsaraVideo Live's recording callback: Aliyun
// POSTs a JSON body to /callbacks/record when a recording file is
// generated and, with status notifications on, when recording starts,
// pauses, resumes or fails.
package aliyunrecord

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
)

func init() {
	sourceapi.Register(sourceapi.Source{
		Name:     event.SourceRecord,
		Doc:      "recording callbacks",
		Path:     "/callbacks/record",
		Methods:  []string{http.MethodPost},
		Decode:   func(r *sourceapi.Request) (*event.Event, error) { return event.DecodeRecord(r.Body) },
		Identity: identity,
		Window:   window,
		Auth:     "aliyun_signature",
	})
}

// identity tells Aliyun's retries of a callback, which carry no id:
//
//   - A file event is its domain, app, stream and uri: a recording file is
//     generated once.
//   - A status event has no time of its own, and two genuine record_error
//     events for one stream can have identical bodies: it is its whole body
//     plus the ALI-LIVE-TIMESTAMP header when Aliyun signs its callbacks.
func identity(r *sourceapi.Request, ev *event.Event) string {
	if ev.Kind == event.KindFile {
		return sourceapi.Key("file", ev.Domain, ev.App, ev.Stream, ev.URI)
	}
	sum := sha256.Sum256(r.Body)
	return sourceapi.Key(ev.Kind, hex.EncodeToString(sum[:]), r.Header.Get(auth.HeaderAliTimestamp))
}

// window remembers a status event only a little longer than Aliyun's
// retries last, since a genuine repeat is possible.
func window(ev *event.Event, w sourceapi.Windows) time.Duration {
	if ev.Kind == event.KindFile {
		return w.File
	}
	return w.Status
}
