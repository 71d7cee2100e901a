// Package generic is any JSON object POSTed to /events/{source}: the path
// names the source, and rules see the object's well-known fields and the
// whole of it as payload.
package generic

import (
	"net/http"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
)

func init() {
	sourceapi.Register(sourceapi.Source{
		Name:    "generic",
		Doc:     "generic JSON events",
		Path:    "/events/{source}",
		Methods: []string{http.MethodPost},
		Decode:  func(r *sourceapi.Request) (*event.Event, error) { return event.DecodeGeneric(r.Name, r.Body) },
		// Deduplicated when the sender gives a Standard Webhooks webhook-id.
		Identity: func(r *sourceapi.Request, ev *event.Event) string {
			id := r.Header.Get(auth.HeaderWebhookID)
			if id == "" {
				return ""
			}
			return sourceapi.Key("event", ev.Source, id)
		},
		// Callers name these sources: one label for all of them keeps the
		// series bounded.
		Label: event.KindEvent,
	})
}
