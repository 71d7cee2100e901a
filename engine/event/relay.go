package event

import (
	"math"
	"net/url"
	"strconv"
	"strings"
)

// relayStatus names the states of a pulled-stream relay task as its
// TaskStatus numbers them.
var relayStatus = map[float64]string{-1: "exit", 0: "idle", 1: "running", 2: "recovering", 3: "offline"}

// DecodeRelay decodes ApsaraVideo Live's pulled-stream relay callback,
// POSTed to a CreateLivePullToPush task's CallbackUrl when the task starts
// running, recovers, goes offline or exits. Event and TaskId are required;
// TaskStatus (1 running, 2 recovering, 3 offline) becomes status,
// TaskInvalidReason reason and EventTime (Unix seconds, sent as a string)
// time. The stream is that of the task's destination (TaskInfo.DstUrl,
// rtmp://domain/app/stream): the relay pushes into it, so its domain is an
// ingest domain, which the rules' domains: map can turn into the streaming
// domain.
func DecodeRelay(body []byte) (*Event, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	ev := &Event{Source: SourceRelay, Kind: KindRelay, Payload: obj}
	var info map[string]any
	switch v := obj["TaskInfo"].(type) {
	case nil:
	case map[string]any:
		info = v
	default:
		return nil, refuse("bad_field", "field \"TaskInfo\": want an object, got %s", jsonKind(v))
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"Event", &ev.Event}, {"TaskId", &ev.TaskID}, {"TaskInvalidReason", &ev.Reason}} {
		if *f.dst, err = text(obj, f.name); err != nil {
			return nil, err
		}
	}
	if ev.TaskID == "" && info != nil {
		ev.TaskID = bestText(info, "TaskId")
	}
	for _, f := range []struct{ name, value string }{{"Event", ev.Event}, {"TaskId", ev.TaskID}} {
		if f.value == "" {
			return nil, refuse("missing_field", "missing required field %q", f.name)
		}
	}
	if v, ok := obj["TaskStatus"]; ok && v != nil {
		n, err := number(v)
		if err != nil || n != math.Trunc(n) {
			return nil, refuse("bad_field", "field \"TaskStatus\": want a whole number such as 1 (running), got %s", jsonKind(v))
		}
		if ev.Status = relayStatus[n]; ev.Status == "" {
			ev.Status = strconv.FormatFloat(n, 'f', -1, 64) // a state the docs do not name yet
		}
	} else if strings.Contains(strings.ToLower(ev.Event), "exit") {
		ev.Status = "exit"
	}
	if v, ok := obj["EventTime"]; ok && v != nil {
		n, err := number(v)
		if err != nil || n < 0 || n >= math.MaxInt64 {
			return nil, refuse("bad_field", "field \"EventTime\": want Unix seconds, got %s", jsonKind(v))
		}
		ev.Time = int64(n)
	}
	if info != nil {
		dst := bestText(info, "DstUrl", "DstURL")
		relayTarget(ev, dst)
		if dst != "" {
			info["DstUrl"] = maskURLAuthKey(dst)
		}
	}
	return ev, nil
}

// relayTarget fills the stream that the relay pushes to from its URL,
// rtmp://domain/app/stream; a URL of another shape leaves them empty.
func relayTarget(ev *Event, dst string) {
	u, err := url.Parse(dst)
	if err != nil || u.Hostname() == "" {
		return
	}
	app, stream, ok := strings.Cut(strings.Trim(u.Path, "/"), "/")
	if !ok || app == "" || stream == "" {
		return
	}
	ev.Domain, ev.IngestDomain, ev.App, ev.Stream = u.Hostname(), u.Hostname(), app, stream
}

// maskURLAuthKey hides auth_key in a URL's query (see authKeyArg).
func maskURLAuthKey(u string) string {
	base, query, ok := strings.Cut(u, "?")
	if !ok {
		return u
	}
	return base + "?" + maskAuthKey(query)
}
