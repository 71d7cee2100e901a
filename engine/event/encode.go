package event

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
)

// AppendJSON appends ev's JSON form, byte for byte what json.Marshal(ev)
// gives, and fails where it fails. Every accepted callback is encoded
// once for the journal, and again as the body of each webhook, command
// or plugin it is sent to; encoding/json's reflection over the event and
// its payload map cost a tenth of the accept path's CPU. This walks the
// fields the way decoded callbacks fill them and hands anything else
// (strings that need escaping, odd numbers, values of other types) to
// encoding/json, so its output stays the reference. FuzzAppendJSON and
// TestAppendJSONEveryField hold it to that.
func AppendJSON(dst []byte, ev *Event) ([]byte, error) {
	if ev == nil {
		return append(dst, "null"...), nil
	}
	w := &encoder{b: dst}
	w.str(`{"id":`, ev.ID)
	w.str(`,"source":`, ev.Source)
	w.str(`,"kind":`, ev.Kind)
	w.str(`,"domain":`, ev.Domain)
	w.str(`,"app":`, ev.App)
	w.str(`,"stream":`, ev.Stream)
	w.str(`,"uri":`, ev.URI)
	w.str(`,"format":`, ev.Format)
	w.float(`,"duration":`, ev.Duration)
	w.int(`,"start_time":`, ev.StartTime)
	w.int(`,"stop_time":`, ev.StopTime)
	w.str(`,"event":`, ev.Event)
	w.b = append(w.b, `,"push_args":`...)
	object(w, ev.PushArgs, 0, func(w *encoder, s string, _ int) { w.string(s) })
	w.b = append(w.b, `,"received_at":`...)
	w.time(ev.ReceivedAt)
	w.b = append(w.b, `,"payload":`...)
	w.value(ev.Payload, 0)

	w.optStr(`,"ingest_domain":`, ev.IngestDomain)
	w.optInt(`,"time":`, ev.Time)
	w.optStr(`,"client_ip":`, ev.ClientIP)
	w.optStr(`,"node":`, ev.Node)
	w.optInt(`,"width":`, ev.Width)
	w.optInt(`,"height":`, ev.Height)
	w.optStr(`,"status":`, ev.Status)
	w.optStr(`,"video_id":`, ev.VideoID)
	w.optStr(`,"task_id":`, ev.TaskID)
	w.optStr(`,"reason":`, ev.Reason)
	w.optStr(`,"suggestion":`, ev.Suggestion)
	w.optStr(`,"label":`, ev.Label)
	w.optStr(`,"scene":`, ev.Scene)
	if ev.Rate != 0 {
		w.float(`,"rate":`, ev.Rate)
	}
	w.optStr(`,"oss_bucket":`, ev.OSSBucket)
	w.optStr(`,"oss_endpoint":`, ev.OSSEndpoint)
	w.optStr(`,"codec":`, ev.Codec)
	w.optInt(`,"vbitrate":`, ev.VBitrate)
	if ev.Reconciled {
		w.b = append(w.b, `,"reconciled":true`...)
	}
	if a := &ev.Answer; a.NeedRecord || a.Formats != nil || a.Interval != nil || a.Rule != "" || a.Default || a.Error != "" {
		w.b = append(w.b, `,"answer":`...)
		w.marshal(ev.Answer) // rare: only on-demand recording questions carry one
	}
	if w.err != nil {
		return dst, w.err
	}
	return append(w.b, '}'), nil
}

// encoder appends JSON to b; the first failure sticks in err.
type encoder struct {
	b   []byte
	err error
}

// marshal appends v as encoding/json encodes it.
func (w *encoder) marshal(v any) {
	enc, err := json.Marshal(v)
	if err != nil {
		w.err = err
		return
	}
	w.b = append(w.b, enc...)
}

func (w *encoder) str(key, s string) {
	w.b = append(w.b, key...)
	w.string(s)
}

func (w *encoder) optStr(key, s string) {
	if s != "" {
		w.str(key, s)
	}
}

func (w *encoder) int(key string, n int64) {
	w.b = strconv.AppendInt(append(w.b, key...), n, 10)
}

func (w *encoder) optInt(key string, n int64) {
	if n != 0 {
		w.int(key, n)
	}
}

func (w *encoder) float(key string, f float64) {
	w.b = append(w.b, key...)
	w.number(f)
}

// string appends s quoted: as it is when PlainJSON, else as
// encoding/json escapes it.
func (w *encoder) string(s string) {
	if !PlainJSON(s) {
		w.marshal(s)
		return
	}
	w.b = append(append(append(w.b, '"'), s...), '"')
}

// PlainJSON reports whether encoding/json writes s between quotes as it
// is: printable ASCII without a quote, a backslash or the characters it
// escapes for HTML (<, > and &).
func PlainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// number appends f as encoding/json does: shortest form, exponent only
// for the very small and very large. NaN and infinities are its to refuse.
func (w *encoder) number(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.marshal(f)
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(w.b); n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
			w.b[n-2] = w.b[n-1]
			w.b = w.b[:n-1]
		}
	}
}

func (w *encoder) time(t time.Time) {
	b, err := t.AppendText(append(w.b, '"'))
	if err != nil {
		w.marshal(t) // its error, worded as encoding/json words it
		return
	}
	w.b = append(b, '"')
}

// object appends m, nil as null, its members in key order and each
// value by put (with the depth of the members).
func object[V any](w *encoder, m map[string]V, depth int, put func(*encoder, V, int)) {
	if m == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '{')
	var buf [16]string
	for i, k := range sortedKeys(m, buf[:0]) {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.string(k)
		w.b = append(w.b, ':')
		put(w, m[k], depth+1)
	}
	w.b = append(w.b, '}')
}

// sortedKeys appends m's keys to buf, sorted: the order encoding/json
// writes a map in.
func sortedKeys[V any](m map[string]V, buf []string) []string {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// maxDepth is how deep value walks a payload itself; deeper nesting (no
// callback has it) is encoding/json's, which also refuses cycles.
const maxDepth = 32

// value appends a payload value: what decoding JSON with numbers made
// int64 or float64 leaves, and anything else through encoding/json.
func (w *encoder) value(v any, depth int) {
	if depth > maxDepth {
		w.marshal(v)
		return
	}
	switch x := v.(type) {
	case nil:
		w.b = append(w.b, "null"...)
	case string:
		w.string(x)
	case bool:
		w.b = strconv.AppendBool(w.b, x)
	case int64:
		w.b = strconv.AppendInt(w.b, x, 10)
	case float64:
		w.number(x)
	case map[string]any:
		object(w, x, depth, (*encoder).value)
	case []any:
		if x == nil {
			w.b = append(w.b, "null"...)
			return
		}
		w.b = append(w.b, '[')
		for i, e := range x {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.value(e, depth+1)
		}
		w.b = append(w.b, ']')
	default:
		w.marshal(v)
	}
}
