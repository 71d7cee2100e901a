package event

import (
	"net/url"
	"strings"
)

// DefaultCodec is what an on-demand recording callback without codec
// means, as Aliyun documents it.
const DefaultCodec = "h264"

// DecodeOnDemand decodes ApsaraVideo Live's on-demand recording callback:
// a GET to the OnDemandUrl asking whether to record a stream, whose query
// carries domain (the streaming domain), app, stream, codec (h264 or h265;
// absent means h264) and vbitrate (the video's bitrate in kbps).
//
// The question carries nothing else: no ingest parameters and no time.
// A codec the docs do not name is taken as it is, and a parameter Aliyun
// adds later stays in the payload.
func DecodeOnDemand(q url.Values) (*Event, error) {
	ev := &Event{Source: SourceOnDemand, Kind: KindOnDemand, Payload: make(map[string]any, len(q))}
	get, err := readQuery(q, "an on-demand recording callback carries domain, app and stream in its query", []requiredParam{
		{"domain", "the streaming domain", &ev.Domain},
		{"app", "the AppName", &ev.App},
		{"stream", "the stream name", &ev.Stream},
	})
	if err != nil {
		return nil, err
	}
	if ev.Codec = get("codec"); ev.Codec == "" {
		ev.Codec = DefaultCodec
	}
	if v := get("vbitrate"); v != "" {
		n, ok := kbps(v)
		if !ok {
			return nil, refuse("bad_field", "parameter %q: want the video bitrate in kbps, such as 2000, got %q", "vbitrate", quoted(v))
		}
		ev.VBitrate = n
	}
	for k, vs := range q {
		ev.Payload[k] = vs[0]
	}
	return ev, nil
}

// kbps reads a bitrate: a whole number, or a decimal one such as 2000.5
// cut to whole kbps. The docs type it as a string and give only whole
// examples, and refusing a real question would leave the stream's
// recording to chance.
func kbps(s string) (int64, bool) {
	whole, frac, dec := strings.Cut(s, ".")
	n, ok := wholeNumber(whole)
	if !ok || dec && (frac == "" || strings.Trim(frac, "0123456789") != "") {
		return 0, false
	}
	return n, true
}
