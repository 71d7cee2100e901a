// Package aliyunrelay is ApsaraVideo Live's pulled-stream relay callback:
// Aliyun POSTs a JSON body to /callbacks/relay (a CreateLivePullToPush
// task's CallbackUrl) when the task starts running, recovers, goes offline
// or exits.
package aliyunrelay

import (
	"net/http"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/sources/internal/identity"
)

func init() {
	sourceapi.Register(sourceapi.Source{
		Name:    event.SourceRelay,
		Doc:     "pulled-stream relay callbacks",
		Path:    "/callbacks/relay",
		Methods: []string{http.MethodPost},
		Decode:  func(r *sourceapi.Request) (*event.Event, error) { return event.DecodeRelay(r.Body) },
		// Unsigned (the docs name no signature for relay callbacks), but
		// EventTime is in the body, so the body tells a retry from a new
		// change of state.
		Identity: func(r *sourceapi.Request, _ *event.Event) string { return identity.Body(event.SourceRelay, r, "") },
		Window:   func(_ *event.Event, w sourceapi.Windows) time.Duration { return w.Status },
	})
}
