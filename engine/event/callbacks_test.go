package event_test

import (
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/event"
)

// queryOf reads a stream callback fixture, a JSON object of the query's
// parameters, as intake hands the query to the decoder.
func queryOf(t testing.TB, name string) url.Values {
	t.Helper()
	var params map[string]string
	if err := json.Unmarshal(readEvent(t, name), &params); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	return q
}

// decoders of the POSTed callbacks, by fixture directory.
var bodyDecoders = map[string]func([]byte) (*event.Event, error){
	"snapshot":         event.DecodeSnapshot,
	"moderation/video": event.DecodeVideoModeration,
	"moderation/audio": event.DecodeAudioModeration,
	"relay":            event.DecodeRelay,
	"vod":              event.DecodeVOD,
}

func decodeFixture(t *testing.T, file string) *event.Event {
	t.Helper()
	var ev *event.Event
	var err error
	switch dir := filepath.Dir(file); {
	case dir == "stream":
		ev, err = event.DecodeStream(queryOf(t, file))
	case dir == "moderation":
		ev, err = bodyDecoders["moderation/"+strings.TrimSuffix(filepath.Base(file), ".json")](readEvent(t, file))
	default:
		ev, err = bodyDecoders[dir](readEvent(t, file))
	}
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	return ev
}

// TestDecodeCallbackFixtures decodes each example callback of the Live
// family (the docs' own, see docs/aliyun-callbacks.md) and checks what a
// rule sees. Every fixture must have a row.
func TestDecodeCallbackFixtures(t *testing.T) {
	tests := []struct {
		file string
		want event.Event
		args map[string]string
	}{
		{file: "stream/publish.json", want: event.Event{
			Source: event.SourceStream, Kind: event.KindStream, Event: "publish",
			Domain: "example.aliyundoc.com", IngestDomain: "example.aliyundoc.com", App: "liveApp****", Stream: "world",
			Time: 1609220385, ClientIP: "192.168.0.1", Node: "cdnvideocenter01020711****.cm3", Width: 1280, Height: 720,
		}, args: map[string]string{"callback_orderid": "A1001"}}, // auth_key is left out
		{file: "stream/publish_done.json", want: event.Event{
			Source: event.SourceStream, Kind: event.KindStream, Event: "publish_done",
			Domain: "example.aliyundoc.com", IngestDomain: "example.aliyundoc.com", App: "liveApp****", Stream: "world",
			Time: 1609220385, ClientIP: "192.168.0.0", Node: "cdnvideocenter01020711****.cm3", Width: 1280, Height: 720,
		}, args: map[string]string{"callback_orderid": "A1001"}},
		// The older page's example: no time, an empty ip.
		{file: "stream/publish_legacy.json", want: event.Event{
			Source: event.SourceStream, Kind: event.KindStream, Event: "publish",
			Domain: "xc.cdnpe.com", IngestDomain: "xc.cdnpe.com", App: "test01", Stream: "test01",
			Node: "cdnvideocenter010207116011.cm3",
		}},
		{file: "snapshot/live_snapshot.json", want: event.Event{
			Source: event.SourceSnapshot, Kind: event.KindSnapshot, Event: "live_snapshot",
			Domain: "play.example.com", App: "live", Stream: "room42",
			URI: "snapshot/live/room42/1714564805.jpg", Format: "jpg", Time: 1714564805,
			OSSBucket: "liveBucket****", OSSEndpoint: "oss-cn-shanghai.aliyuncs.com",
		}},
		{file: "moderation/video.json", want: event.Event{
			Source: event.SourceVideoModeration, Kind: event.KindModeration,
			Domain: "play.example.com", App: "live", Stream: "room42",
			URI: "detect/live/room42/1714564810.jpg", Format: "jpg",
			OSSBucket: "liveBucket****", OSSEndpoint: "oss-cn-shanghai.aliyuncs.com",
			Suggestion: "block", Label: "porn", Scene: "porn", Rate: 99.91,
		}},
		{file: "moderation/audio.json", want: event.Event{
			Source: event.SourceAudioModeration, Kind: event.KindModeration,
			Domain: "play.example.com", App: "live", Stream: "room42", Time: 1571989535,
			Suggestion: "block", Label: "ad", Scene: "antispam", Rate: 99.91,
		}},
		// The docs' sample spells the event LivePullToPushRuning.
		{file: "relay/running.json", want: event.Event{
			Source: event.SourceRelay, Kind: event.KindRelay, Event: "LivePullToPushRuning",
			TaskID: "08a1b00c-9c2f-4dfa-9f5d-878f2505****", Status: "running", Time: 1725501246,
			Domain: "push.example.com", IngestDomain: "push.example.com", App: "live", Stream: "room42",
		}},
		{file: "relay/offline.json", want: event.Event{
			Source: event.SourceRelay, Kind: event.KindRelay, Event: "LivePullToPushRunning",
			TaskID: "08a1b00c-9c2f-4dfa-9f5d-878f2505****", Status: "offline", Reason: "PullStreamFailed", Time: 1725504846,
			Domain: "push.example.com", IngestDomain: "push.example.com", App: "live", Stream: "room42",
		}},
		{file: "vod/live_record_complete.json", want: event.Event{
			Source: event.SourceVOD, Kind: event.KindVOD, Event: event.VODLiveRecordComplete,
			VideoID: "43q9fjdhef****", Status: "success", Domain: "play.example.com", App: "live", Stream: "room42",
			Time: 1512725177, StartTime: 1512718856, StopTime: 1512725177,
		}},
		{file: "vod/compose_start.json", want: event.Event{
			Source: event.SourceVOD, Kind: event.KindVOD, Event: event.VODLiveComposeStart,
			VideoID: "43q9fsjnehdf****", Status: "success", Domain: "domainname_****", App: "appname_****", Stream: "streamname_****",
			Time: 1512725177,
		}},
	}
	var covered []string
	for _, tt := range tests {
		covered = append(covered, tt.file)
		t.Run(tt.file, func(t *testing.T) {
			ev := decodeFixture(t, tt.file)
			got := *ev
			got.Payload, got.PushArgs = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n %+v\nwant\n %+v", got, tt.want)
			}
			if !maps.Equal(ev.PushArgs, tt.args) {
				t.Errorf("push_args = %v, want %v", ev.PushArgs, tt.args)
			}
			// Everything Aliyun sent stays reachable, fields it adds later too.
			var raw map[string]any
			if err := json.Unmarshal(readEvent(t, tt.file), &raw); err != nil {
				t.Fatal(err)
			}
			if got, want := slices.Sorted(maps.Keys(ev.Payload)), slices.Sorted(maps.Keys(raw)); !slices.Equal(got, want) {
				t.Errorf("payload keys = %v, want %v", got, want)
			}
		})
	}
	for _, dir := range []string{"stream", "snapshot", "moderation", "relay", "vod"} {
		files, err := filepath.Glob(filepath.Join(eventsDir, dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if rel := dir + "/" + filepath.Base(f); !slices.Contains(covered, rel) {
				t.Errorf("%s has no row in this table", rel)
			}
		}
	}
}

// TestPushTokensAreNotKept: the signed token of an ingest URL (auth_key)
// lets whoever holds it push the stream until it expires. It is masked in
// the payload, which is stored and shown, and left out of push_args.
func TestPushTokensAreNotKept(t *testing.T) {
	ev := decodeFixture(t, "stream/publish.json")
	if got, want := ev.Payload["usrargs"], "auth_key=****&callback_orderid=A1001"; got != want {
		t.Errorf("payload usrargs = %q, want %q", got, want)
	}
	relay := decodeFixture(t, "relay/running.json")
	info := relay.Payload["TaskInfo"].(map[string]any)
	if got, want := info["DstUrl"], "rtmp://push.example.com/live/room42?auth_key=****"; got != want {
		t.Errorf("payload TaskInfo.DstUrl = %q, want %q", got, want)
	}
	for _, ev := range []*event.Event{ev, relay} {
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), "6c8f1f9d") || strings.Contains(string(b), "0a1b2c3d") {
			t.Errorf("the token is in the event: %s", b)
		}
	}
}

func TestDecodeStreamRefusesBadQueries(t *testing.T) {
	base := func() url.Values { return queryOf(t, "stream/publish.json") }
	with := func(edit func(url.Values)) url.Values { q := base(); edit(q); return q }
	tests := []struct {
		name   string
		q      url.Values
		reason string
		msg    string
	}{
		{"no query", nil, "missing_field", "no query"},
		{"no action", with(func(q url.Values) { q.Del("action") }), "missing_field", `"action" (publish or publish_done)`},
		{"no stream", with(func(q url.Values) { q.Del("id") }), "missing_field", `"id" (the stream name)`},
		{"an empty ingest domain", with(func(q url.Values) { q.Set("app", "") }), "missing_field", `"app" (the ingest domain)`},
		{"no AppName", with(func(q url.Values) { q.Del("appname") }), "missing_field", `"appname"`},
		{"time as a date", with(func(q url.Values) { q.Set("time", "2020-12-29") }), "bad_field", `"time": want a whole number of Unix seconds, got "2020-12-29"`},
		{"a signed width", with(func(q url.Values) { q.Set("width", "+1280") }), "bad_field", `"width"`},
		{"a fractional height", with(func(q url.Values) { q.Set("height", "720.5") }), "bad_field", `"height"`},
		{"a time beyond int64", with(func(q url.Values) { q.Set("time", "99999999999999999999") }), "bad_field", `"time"`},
		{"a parameter twice", with(func(q url.Values) { q.Add("id", "other") }), "duplicate_field", `"id" is given 2 times`},
		{"invalid UTF-8", with(func(q url.Values) { q.Set("node", "n\xff") }), "invalid_utf8", "UTF-8"},
		{"a long parameter", with(func(q url.Values) { q.Set("usrargs", strings.Repeat("a", event.MaxQueryValue+1)) }), "query_too_large", `"usrargs" is 4097 bytes`},
		{"too many parameters", with(func(q url.Values) {
			for i := range event.MaxQueryParams {
				q.Set("p"+string(rune('a'+i%26))+strings.Repeat("x", i), "1")
			}
		}), "query_too_large", "parameters: at most 32"},
		{"too many bytes", with(func(q url.Values) {
			for i := range 3 {
				q.Set("big"+string(rune('a'+i)), strings.Repeat("v", event.MaxQueryValue-10))
			}
		}), "query_too_large", "bytes: at most 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := event.DecodeStream(tt.q)
			var de *event.DecodeError
			if !errors.As(err, &de) || de.Reason != tt.reason || !strings.Contains(de.Msg, tt.msg) {
				t.Fatalf("DecodeStream = %+v, %v; want %s containing %q", ev, err, tt.reason, tt.msg)
			}
		})
	}
}

func TestDecodeStreamTakesWhatAliyunMayAdd(t *testing.T) {
	q := queryOf(t, "stream/publish.json")
	q.Set("action", "publish_paused") // an action the docs do not name yet
	q.Set("codec", "h265")
	q.Set("usrargs", "a=1&a=2&%zz=bad&b=%20x")
	ev, err := event.DecodeStream(q)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Event != "publish_paused" || ev.Payload["codec"] != "h265" {
		t.Errorf("event %q, payload %v", ev.Event, ev.Payload)
	}
	if want := map[string]string{"a": "1", "b": " x"}; !maps.Equal(ev.PushArgs, want) {
		t.Errorf("push_args = %v, want %v: the first value wins, a malformed pair is skipped", ev.PushArgs, want)
	}
}

func TestDecodePostedCallbacksRefuseBadBodies(t *testing.T) {
	tests := []struct {
		name, decoder, body string
		reason, msg         string
	}{
		{"snapshot: not an object", "snapshot", `[]`, "not_object", "want a JSON object"},
		{"snapshot: no stream", "snapshot", `{"domain":"d","app":"a","OssObject":"x.jpg"}`, "missing_field", `"stream" (or "StreamName")`},
		{"snapshot: a numeric domain", "snapshot", `{"domain":1,"app":"a","stream":"s"}`, "bad_field", `"domain": want a string, got number`},
		{"snapshot: a duplicate key", "snapshot", `{"domain":"d","app":"a","stream":"s","stream":"t"}`, "duplicate_key", ""},
		{"video: no domain", "moderation/video", `{"AppName":"a","StreamName":"s"}`, "missing_field", `"domain" (or "DomainName")`},
		{"video: a StreamName object", "moderation/video", `{"DomainName":"d","AppName":"a","StreamName":{}}`, "bad_field", `"StreamName": want a string, got object`},
		{"audio: empty", "moderation/audio", ``, "empty_body", ""},
		{"audio: no app", "moderation/audio", `{"domain":"d","stream":"s","result":[]}`, "missing_field", `"app"`},
		{"relay: no event", "relay", `{"TaskId":"t","TaskStatus":1}`, "missing_field", `"Event"`},
		{"relay: no task", "relay", `{"Event":"LivePullToPushRunning"}`, "missing_field", `"TaskId"`},
		{"relay: a TaskStatus word", "relay", `{"Event":"e","TaskId":"t","TaskStatus":"running"}`, "bad_field", `"TaskStatus"`},
		{"relay: a fractional TaskStatus", "relay", `{"Event":"e","TaskId":"t","TaskStatus":1.5}`, "bad_field", `"TaskStatus"`},
		{"relay: EventTime as a date", "relay", `{"Event":"e","TaskId":"t","EventTime":"2024-09-05"}`, "bad_field", `"EventTime": want Unix seconds`},
		{"relay: TaskInfo a string", "relay", `{"Event":"e","TaskId":"t","TaskInfo":"x"}`, "bad_field", `"TaskInfo": want an object`},
		{"relay: a numeric reason", "relay", `{"Event":"e","TaskId":"t","TaskInvalidReason":3}`, "bad_field", `"TaskInvalidReason"`},
		{"vod: no event type", "vod", `{"VideoId":"v","Status":"success"}`, "missing_field", `"EventType"`},
		{"vod: no video", "vod", `{"EventType":"AddLiveRecordVideoComplete","Status":"success"}`, "missing_field", `"VideoId"`},
		{"vod: no status", "vod", `{"EventType":"LiveRecordVideoComposeStart","VideoId":"v"}`, "missing_field", `"Status"`},
		{"vod: a local time", "vod", `{"EventType":"AddLiveRecordVideoComplete","VideoId":"v","Status":"success","RecordStartTime":"2017-12-08 07:40:56"}`, "bad_field", `"RecordStartTime": want a time such as`},
		{"vod: a numeric stream", "vod", `{"EventType":"AddLiveRecordVideoComplete","VideoId":"v","Status":"success","StreamName":42}`, "bad_field", `"StreamName"`},
		{"vod: a number beyond float64", "vod", `{"EventType":"x","n":1e400}`, "bad_field", "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := bodyDecoders[tt.decoder]([]byte(tt.body))
			var de *event.DecodeError
			if !errors.As(err, &de) || de.Reason != tt.reason || !strings.Contains(de.Msg, tt.msg) {
				t.Fatalf("decode = %+v, %v; want %s containing %q", ev, err, tt.reason, tt.msg)
			}
		})
	}
}

// TestDecodePostedCallbacksTolerate what the docs leave open or Aliyun may
// vary: other namings, times in other forms, other VOD events.
func TestDecodePostedCallbacksTolerate(t *testing.T) {
	tests := []struct {
		name, decoder, body string
		check               func(*event.Event) bool
	}{
		{"snapshot with lower-case OSS fields and time in ms", "snapshot",
			`{"DomainName":"d","AppName":"a","StreamName":"s","oss_object":"x/1.JPG","oss_bucket":"b","time":1714564805123}`,
			func(e *event.Event) bool {
				return e.URI == "x/1.JPG" && e.Format == "jpg" && e.OSSBucket == "b" && e.Time == 1714564805
			}},
		{"snapshot with an RFC 3339 time and a mistyped bucket", "snapshot",
			`{"domain":"d","app":"a","stream":"s","CreateTime":"2024-05-01T12:00:05Z","OssBucket":7}`,
			func(e *event.Event) bool {
				return e.Time == 1714564805 && e.OSSBucket == "" && e.Payload["OssBucket"] == int64(7)
			}},
		{"snapshot with a time it cannot read", "snapshot",
			`{"domain":"d","app":"a","stream":"s","CreateTime":"yesterday"}`,
			func(e *event.Event) bool { return e.Time == 0 && e.Payload["CreateTime"] == "yesterday" }},
		{"audio: the most severe verdict wins over a higher rate", "moderation/audio",
			`{"domain":"d","app":"a","stream":"s","result":[{"scene":"antispam","label":"normal","suggestion":"pass","rate":99.99},{"scene":"antispam","label":"abuse","suggestion":"Review","rate":60}]}`,
			func(e *event.Event) bool { return e.Suggestion == "review" && e.Label == "abuse" && e.Rate == 60 }},
		{"video: no verdict", "moderation/video", `{"DomainName":"d","AppName":"a","StreamName":"s"}`,
			func(e *event.Event) bool { return e.Suggestion == "" && e.Kind == event.KindModeration }},
		{"relay exit: no TaskStatus", "relay", `{"Event":"LivePullToPushExit","TaskId":"t","EventTime":1725501246}`,
			func(e *event.Event) bool { return e.Status == "exit" && e.Time == 1725501246 && e.Domain == "" }},
		{"relay: a state the docs do not name", "relay", `{"Event":"e","TaskId":"t","TaskStatus":"7"}`,
			func(e *event.Event) bool { return e.Status == "7" }},
		{"relay: a destination that is no rtmp://domain/app/stream", "relay", `{"Event":"e","TaskId":"t","TaskInfo":{"TaskId":"t","DstUrl":"rtmp://push.example.com/live"}}`,
			func(e *event.Event) bool { return e.Domain == "" && e.App == "" && e.Stream == "" }},
		{"relay: the task only in TaskInfo", "relay", `{"Event":"e","TaskInfo":{"TaskId":"t2"}}`,
			func(e *event.Event) bool { return e.TaskID == "t2" }},
		{"vod: another event type, mistyped fields left zero", "vod", `{"EventType":"FileUploadComplete","VideoId":5,"EventTime":"soon","Size":100}`,
			func(e *event.Event) bool { return e.Event == "FileUploadComplete" && e.VideoID == "" && e.Time == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := bodyDecoders[tt.decoder]([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(ev) {
				t.Errorf("decoded %+v", ev)
			}
		})
	}
}

// TestNewFieldsLeaveRecordingJSONAsItWas: the fields of the other
// callbacks are omitted when empty, so stored recording events, webhooks
// and plugins see the JSON they saw.
func TestNewFieldsLeaveRecordingJSONAsItWas(t *testing.T) {
	ev, err := event.DecodeRecord(readEvent(t, "file_flv.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"id", "source", "kind", "domain", "app", "stream", "uri", "format", "duration",
		"start_time", "stop_time", "event", "push_args", "received_at", "payload"}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("JSON keys = %v, want %v", got, want)
	}
}
