// Package rulestest builds rule sets shaped like a real deployment's, and
// callbacks for them, for benchmarks of matching and of intake.
package rulestest

import (
	"fmt"
	"strings"

	"github.com/livehook/livehook/engine/event"
)

// The namespace of the rules and events: apps app-00..app-19 under
// domains d00..d04.example.com, streams cam-0000.. and vip-NNN-... .
const (
	apps    = 20
	domains = 5
)

// Mixed is a rules file of n rules, each with one `log` step, in the
// proportions of rules generated per customer, stream and app, with a few
// hand-written ones:
//
//   - 40 % per stream: `stream == "cam-0042" && kind == "file"`, or with
//     event == "record_error";
//   - 25 % per app: `app == "app-07" && duration < 10`,
//     `app in [...] && kind == "status"`, `domain == ... && app == ...`;
//   - 15 % by prefix: `stream startsWith "vip-012-"`,
//     `uri matches "^record/app-03/cam-01"`,
//     `push_args.callback_orderid startsWith "ORD012"`;
//   - 10 % broad: `kind == "file" && duration > 3600`,
//     `event == "record_error" && ...`, `format == "mp4" && ...`;
//   - 10 % that no index can narrow: a payload test first, `||`,
//     `endsWith`.
//
// None matches a callback outside the namespace shorter than an hour.
func Mixed(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		app := fmt.Sprintf("app-%02d", i%apps)
		var when string
		switch k := i % 20; {
		case k < 8: // per stream
			if i%2 == 0 {
				when = fmt.Sprintf(`stream == "cam-%04d" && kind == "file"`, i)
			} else {
				when = fmt.Sprintf(`app == %q && stream == "cam-%04d" && event == "record_error"`, app, i)
			}
		case k < 13: // per app
			switch i % 3 {
			case 0:
				when = fmt.Sprintf(`app == %q && duration < %d`, app, 5+i%10)
			case 1:
				when = fmt.Sprintf(`app in [%q, "app-%02d"] && kind == "status" && event != "record_started"`, app, (i+7)%apps)
			default:
				when = fmt.Sprintf(`domain == "d%02d.example.com" && app == %q && format == "m3u8"`, i%domains, app)
			}
		case k < 16: // by prefix
			switch i % 3 {
			case 0:
				when = fmt.Sprintf(`stream startsWith "vip-%03d-"`, i%200)
			case 1:
				when = fmt.Sprintf(`kind == "file" && uri matches "^record/%s/cam-%02d"`, app, i%100)
			default:
				when = fmt.Sprintf(`push_args.callback_orderid startsWith "ORD%03d"`, i%500)
			}
		case k < 18: // broad
			switch i % 3 {
			case 0:
				when = fmt.Sprintf(`kind == "file" && duration > %d`, 3600+i)
			case 1:
				when = fmt.Sprintf(`event == "record_error" && payload.error_info?.code == "E%d"`, i)
			default:
				when = fmt.Sprintf(`format == "mp4" && stop_time - start_time > %d`, 3600+i)
			}
		default: // nothing to index
			switch i % 3 {
			case 0:
				when = fmt.Sprintf(`payload.error_info?.code == "E%d" && app == %q`, i, app)
			case 1:
				when = fmt.Sprintf(`stream == "cam-%04d" || stream == "vip-%03d-x"`, i, i%200)
			default:
				when = fmt.Sprintf(`uri endsWith "/cam-%04d.flv" && duration > %d`, i, i%30)
			}
		}
		fmt.Fprintf(&b, "  - name: r%04d\n    when: '%s'\n    do: [{type: log}]\n", i, when)
	}
	return b.String()
}

// Events are n recording callbacks inside Mixed's namespace: files and
// status events of its apps and streams, a few with an order id, so that
// each meets a handful of rules' constraints and matches a few.
func Events(n int) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		app := fmt.Sprintf("app-%02d", i%apps)
		stream := fmt.Sprintf("cam-%04d", (i*37)%1000)
		if i%5 == 0 {
			stream = fmt.Sprintf("vip-%03d-%d", i%200, i)
		}
		ev := &event.Event{
			ID: fmt.Sprint(i), Source: event.SourceRecord,
			Domain: fmt.Sprintf("d%02d.example.com", i%domains), App: app, Stream: stream,
			StartTime: 1714564803, StopTime: 1714564803 + int64(i%90),
		}
		switch i % 4 {
		case 0, 1:
			ev.Kind, ev.Duration = event.KindFile, float64(i%90)
			ev.URI = fmt.Sprintf("record/%s/%s/%d.flv", app, stream, i)
			if i%4 == 1 {
				ev.URI = fmt.Sprintf("record/%s/%s/%d.m3u8", app, stream, i)
			}
			ev.Format = event.FormatOf(ev.URI)
		case 2:
			ev.Kind, ev.Event = event.KindStatus, "record_error"
			ev.Payload = map[string]any{"error_info": map[string]any{"code": fmt.Sprintf("E%d", i%1000)}}
		default:
			ev.Kind, ev.Event = event.KindStatus, "record_paused"
		}
		if i%7 == 0 {
			ev.PushArgs = map[string]string{"callback_orderid": fmt.Sprintf("ORD%03d-%d", i%500, i)}
		}
		if ev.Payload == nil {
			ev.Payload = map[string]any{}
		}
		out[i] = ev
	}
	return out
}
