// Package aliyunsnapshot is ApsaraVideo Live's snapshot callback: Aliyun
// POSTs a JSON body to /callbacks/snapshot each time it stores a snapshot
// of a stream in OSS (the snapshot configuration's Callback URL, on the
// streaming domain).
package aliyunsnapshot

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
		Name:    event.SourceSnapshot,
		Doc:     "snapshot callbacks",
		Path:    "/callbacks/snapshot",
		Methods: []string{http.MethodPost},
		Decode:  func(r *sourceapi.Request) (*event.Event, error) { return event.DecodeSnapshot(r.Body) },
		// In overwrite mode every snapshot of a stream has the same object
		// key, so the object cannot tell them apart: the body and
		// ALI-LIVE-TIMESTAMP can.
		Identity: func(r *sourceapi.Request, _ *event.Event) string {
			return identity.Body(event.SourceSnapshot, r, auth.HeaderAliTimestamp)
		},
		Window: func(_ *event.Event, w sourceapi.Windows) time.Duration { return w.Status },
		// Signed over the host of the callback URL (SetSnapshotCallbackAuth).
		Auth: "aliyun_signature",
	})
}
