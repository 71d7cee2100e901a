// Package event defines the event that rules see, and decodes Aliyun Live
// recording callbacks and generic JSON events into it.
package event

import (
	"path"
	"strings"
	"time"
)

// Sources and kinds that rules can test.
const (
	SourceRecord = "aliyun_live_record" // POST /callbacks/record

	KindFile    = "file"    // a recording file was generated
	KindStatus  = "status"  // record_started, record_paused, record_resumed, record_error
	KindEvent   = "event"   // a generic event from POST /events/{source}
	KindUnknown = "unknown" // a recording callback with neither event nor uri
)

// Event is one callback as rules see it. The expr tags are the names rule
// conditions use; the json tags are the same names for APIs and webhooks.
// Fields a callback does not carry keep their zero value, so
// `event == "record_error"` is simply false for a file event.
//
// Event has no methods on purpose: expr exposes every method as a function
// callable from conditions.
type Event struct {
	ID         string            `expr:"id" json:"id"`
	Source     string            `expr:"source" json:"source"`
	Kind       string            `expr:"kind" json:"kind"`
	Domain     string            `expr:"domain" json:"domain"`
	App        string            `expr:"app" json:"app"`
	Stream     string            `expr:"stream" json:"stream"`
	URI        string            `expr:"uri" json:"uri"`
	Format     string            `expr:"format" json:"format"`
	Duration   float64           `expr:"duration" json:"duration"`
	StartTime  int64             `expr:"start_time" json:"start_time"`
	StopTime   int64             `expr:"stop_time" json:"stop_time"`
	Event      string            `expr:"event" json:"event"`
	PushArgs   map[string]string `expr:"push_args" json:"push_args"`
	ReceivedAt time.Time         `expr:"received_at" json:"received_at"`
	Payload    map[string]any    `expr:"payload" json:"payload"`
}

// Fields lists the names every event exposes to conditions and templates.
var Fields = []string{
	"id", "source", "kind", "domain", "app", "stream", "uri", "format",
	"duration", "start_time", "stop_time", "event", "push_args",
	"received_at", "payload",
}

// TemporalFields are the template names a rule over time fills in
// besides the event's fields; nil for other rules.
var TemporalFields = []string{
	"key",     // the values of the rule's by fields, by name (.key.stream)
	"prev",    // the key's last tracked event, for a rule whose condition uses prev
	"trigger", // the event that opened the expectation (expect)
	"events",  // what a session or digest gathered, at most max_items
	"count",   // matches in the window, session or bucket
	"window",  // the rule's window (count within, digest bucket), as text
	"waited",  // how long an expectation waited, as text
	"late",    // the timer came due while livehook was down
	"dropped", // items past max_items, counted but not kept
}

// TemplateData is the map templates render against: every field under its
// rule name, plus extra values such as the throttle's suppressed count.
func TemplateData(e *Event, extra map[string]any) map[string]any {
	m := map[string]any{
		"id": e.ID, "source": e.Source, "kind": e.Kind,
		"domain": e.Domain, "app": e.App, "stream": e.Stream,
		"uri": e.URI, "format": e.Format, "duration": e.Duration,
		"start_time": e.StartTime, "stop_time": e.StopTime, "event": e.Event,
		"push_args": e.PushArgs, "received_at": e.ReceivedAt, "payload": e.Payload,
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// FormatOf is the lower-case extension of a recording's object key, without
// the dot: "flv", "m3u8", "mp4"; "" when there is none.
func FormatOf(uri string) string {
	return strings.ToLower(strings.TrimPrefix(path.Ext(uri), "."))
}
