// Package aliyunmoderation is ApsaraVideo Live's automated review: Aliyun
// POSTs a JSON body to /callbacks/moderation/video when a stream's sampled
// pictures break the moderation rules (AddLiveDetectNotifyConfig) and to
// /callbacks/moderation/audio for its sound (AddLiveAudioAuditNotifyConfig).
// The two are separate sources: they are configured apart and their bodies
// differ.
package aliyunmoderation

import (
	"net/http"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/sources/internal/identity"
)

func init() {
	for _, s := range []struct {
		name, doc, path string
		decode          func([]byte) (*event.Event, error)
	}{
		{event.SourceVideoModeration, "video moderation callbacks", "/callbacks/moderation/video", event.DecodeVideoModeration},
		{event.SourceAudioModeration, "audio moderation callbacks", "/callbacks/moderation/audio", event.DecodeAudioModeration},
	} {
		sourceapi.Register(sourceapi.Source{
			Name:    s.name,
			Doc:     s.doc,
			Path:    s.path,
			Methods: []string{http.MethodPost},
			Decode:  func(r *sourceapi.Request) (*event.Event, error) { return s.decode(r.Body) },
			// Aliyun documents no signature for these callbacks: the body
			// alone tells a retry.
			Identity: func(r *sourceapi.Request, _ *event.Event) string { return identity.Body(s.name, r, "") },
			Window:   func(_ *event.Event, w sourceapi.Windows) time.Duration { return w.Status },
		})
	}
}
