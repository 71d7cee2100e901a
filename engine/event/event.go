// Package event defines the event that rules see, and decodes into it
// Aliyun Live's callbacks (recording, stream publish, snapshot, moderation,
// relay), ApsaraVideo VOD's event notifications and generic JSON events.
package event

import (
	"path"
	"strings"
	"time"
)

// Sources and kinds that rules can test.
const (
	SourceRecord          = "aliyun_live_record"           // POST /callbacks/record
	SourceStream          = "aliyun_live_stream"           // GET /callbacks/stream
	SourceSnapshot        = "aliyun_live_snapshot"         // POST /callbacks/snapshot
	SourceVideoModeration = "aliyun_live_video_moderation" // POST /callbacks/moderation/video
	SourceAudioModeration = "aliyun_live_audio_moderation" // POST /callbacks/moderation/audio
	SourceRelay           = "aliyun_live_relay"            // POST /callbacks/relay
	SourceVOD             = "aliyun_vod"                   // POST /callbacks/vod
	SourceOnDemand        = "aliyun_live_ondemand"         // GET /callbacks/ondemand

	KindFile       = "file"       // a recording file was generated
	KindStatus     = "status"     // record_started, record_paused, record_resumed, record_error
	KindEvent      = "event"      // a generic event from POST /events/{source}
	KindUnknown    = "unknown"    // a recording callback with neither event nor uri
	KindStream     = "stream"     // a stream was published (publish) or stopped (publish_done)
	KindSnapshot   = "snapshot"   // a snapshot was stored
	KindModeration = "moderation" // a moderation verdict on a stream's pictures or sound
	KindRelay      = "relay"      // a pulled-stream relay task changed state
	KindVOD        = "vod"        // an ApsaraVideo VOD event, such as a recording added to VOD
	KindOnDemand   = "ondemand"   // Live asks whether to record a stream (on-demand recording)
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

	// Fields of the other Live callbacks and VOD events. They are left out
	// of the JSON form when empty, so a recording event reads as it did.

	// IngestDomain is the ingest (push) domain a callback named, kept when
	// the rules' domains: map turns domain into the streaming domain.
	IngestDomain string  `expr:"ingest_domain" json:"ingest_domain,omitempty"`
	Time         int64   `expr:"time" json:"time,omitempty"` // when it happened, as the callback says: Unix seconds
	ClientIP     string  `expr:"client_ip" json:"client_ip,omitempty"`
	Node         string  `expr:"node" json:"node,omitempty"` // the CDN node that took the stream
	Width        int64   `expr:"width" json:"width,omitempty"`
	Height       int64   `expr:"height" json:"height,omitempty"`
	Status       string  `expr:"status" json:"status,omitempty"` // VOD: success, fail; relay: running, recovering, offline, exit
	VideoID      string  `expr:"video_id" json:"video_id,omitempty"`
	TaskID       string  `expr:"task_id" json:"task_id,omitempty"`
	Reason       string  `expr:"reason" json:"reason,omitempty"`         // why a relay stopped
	Suggestion   string  `expr:"suggestion" json:"suggestion,omitempty"` // moderation: block, review or pass
	Label        string  `expr:"label" json:"label,omitempty"`
	Scene        string  `expr:"scene" json:"scene,omitempty"`
	Rate         float64 `expr:"rate" json:"rate,omitempty"` // confidence of the verdict, 0-100
	OSSBucket    string  `expr:"oss_bucket" json:"oss_bucket,omitempty"`
	OSSEndpoint  string  `expr:"oss_endpoint" json:"oss_endpoint,omitempty"`
	Codec        string  `expr:"codec" json:"codec,omitempty"`       // on-demand recording: h264 or h265
	VBitrate     int64   `expr:"vbitrate" json:"vbitrate,omitempty"` // on-demand recording: the video's bitrate, kbps

	// Reconciled marks a callback livehook never received, found later in
	// Aliyun's record of the callbacks it sent: received_at is when it was
	// found, so rules can treat late events differently.
	Reconciled bool `expr:"reconciled" json:"reconciled,omitempty"`

	// Answer is what livehook answered a callback that asks a question
	// (on-demand recording: record this stream?), decided by the rules
	// when the callback was accepted and kept with it, so the reason is
	// on record.
	Answer Answer `expr:"answer" json:"answer,omitzero"`
}

// Answer is livehook's answer to an on-demand recording callback. Exactly
// one of Rule and Default says who decided.
type Answer struct {
	NeedRecord bool `expr:"need_record" json:"need_record"`
	// Formats narrows the formats recorded (mp4, flv, m3u8); none: those
	// the recording configuration has.
	Formats []string `expr:"formats" json:"formats,omitempty"`
	// Interval is the recording cycle in seconds, by format; none: the
	// configured cycle.
	Interval map[string]int64 `expr:"interval" json:"interval,omitempty"`
	Rule     string           `expr:"rule" json:"rule,omitempty"`       // the answer rule that decided
	Default  bool             `expr:"default" json:"default,omitempty"` // no answer rule decided: the source's default answered
	// Error is why the answer rules could not decide (a condition failed
	// at run time); the default answered.
	Error string `expr:"error" json:"error,omitempty"`
}

// Fields lists the names every event exposes to conditions and templates.
var Fields = []string{
	"id", "source", "kind", "domain", "app", "stream", "uri", "format",
	"duration", "start_time", "stop_time", "event", "push_args",
	"received_at", "payload",
	"ingest_domain", "time", "client_ip", "node", "width", "height", "status",
	"video_id", "task_id", "reason", "suggestion", "label", "scene", "rate",
	"oss_bucket", "oss_endpoint", "codec", "vbitrate", "reconciled", "answer",
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
		"ingest_domain": e.IngestDomain, "time": e.Time, "client_ip": e.ClientIP,
		"node": e.Node, "width": e.Width, "height": e.Height, "status": e.Status,
		"video_id": e.VideoID, "task_id": e.TaskID, "reason": e.Reason,
		"suggestion": e.Suggestion, "label": e.Label, "scene": e.Scene, "rate": e.Rate,
		"oss_bucket": e.OSSBucket, "oss_endpoint": e.OSSEndpoint, "codec": e.Codec, "vbitrate": e.VBitrate,
		"reconciled": e.Reconciled, "answer": answerData(&e.Answer),
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// answerData is an answer under its template names.
func answerData(a *Answer) map[string]any {
	return map[string]any{
		"need_record": a.NeedRecord, "formats": a.Formats, "interval": a.Interval,
		"rule": a.Rule, "default": a.Default, "error": a.Error,
	}
}

// FormatOf is the lower-case extension of a recording's object key, without
// the dot: "flv", "m3u8", "mp4"; "" when there is none.
func FormatOf(uri string) string {
	return strings.ToLower(strings.TrimPrefix(path.Ext(uri), "."))
}
