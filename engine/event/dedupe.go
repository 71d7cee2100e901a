package event

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// DedupeKey identifies a callback across the sender's retries, which carry
// no id of their own; "" means the event is not deduplicated.
//
//   - A file event is its domain, app, stream and uri: a recording file is
//     generated once.
//   - A status event has no time of its own, and two genuine record_error
//     events for one stream can have identical bodies: it is its whole body
//     plus the ALI-LIVE-TIMESTAMP header when Aliyun signs its callbacks,
//     kept only a little longer than Aliyun's retries last.
//   - A generic event is deduplicated when its sender gives a Standard
//     Webhooks webhook-id header.
func DedupeKey(ev *Event, body []byte, aliTimestamp, webhookID string) string {
	switch {
	case ev.Source != SourceRecord:
		if webhookID == "" {
			return ""
		}
		return join("event", ev.Source, webhookID)
	case ev.Kind == KindFile:
		return join("file", ev.Domain, ev.App, ev.Stream, ev.URI)
	default:
		sum := sha256.Sum256(body)
		return join(ev.Kind, hex.EncodeToString(sum[:]), aliTimestamp)
	}
}

func join(parts ...string) string { return strings.Join(parts, "\x00") }
