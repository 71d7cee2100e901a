package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/livehook/livehook/internal/textcut"
)

// DecodeError says why a body was refused. Reason is a short stable word for
// metrics; the message is what the caller is told.
type DecodeError struct {
	Reason string
	Msg    string
}

func (e *DecodeError) Error() string { return e.Msg }

func refuse(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// DecodeRecord decodes an Aliyun Live recording callback: a file-generated
// event or a status event. It is lenient where Aliyun may vary (extra
// fields, numbers sent as numeric strings) and strict where rules depend on
// it: the body must be a JSON object with string domain, app and stream.
func DecodeRecord(body []byte) (*Event, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	ev := &Event{Source: SourceRecord, Payload: obj}
	if err := fill(ev, obj, true); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, value string }{
		{"domain", ev.Domain}, {"app", ev.App}, {"stream", ev.Stream},
	} {
		if f.value == "" {
			return nil, refuse("missing_field", "missing required field %q", f.name)
		}
	}
	switch {
	case ev.Event != "":
		ev.Kind = KindStatus
	case ev.URI != "":
		ev.Kind = KindFile
	default:
		ev.Kind = KindUnknown
	}
	return ev, nil
}

// DecodeGeneric decodes any JSON object as an event from source. Well-known
// fields (domain, app, stream, uri, event, duration, ...) are filled when
// present with a usable type; everything stays reachable through payload.
func DecodeGeneric(source string, body []byte) (*Event, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	ev := &Event{Source: source, Kind: KindEvent, Payload: obj}
	_ = fill(ev, obj, false) // generic events are best effort: a mistyped field stays zero
	return ev, nil
}

func decodeObject(body []byte) (map[string]any, error) {
	if obj, ok := parseObject(body); ok {
		return obj, nil
	}
	return checkObject(body)
}

// checkObject is decodeObject by its rules one after another: the
// reference parseObject is tested against, and what says why a body it
// does not take is refused.
func checkObject(body []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, refuse("empty_body", "empty body: want a JSON object")
	}
	if err := checkShape(body); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, refuse("invalid_json", "body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, refuse("invalid_json", "body is not valid JSON: data after the top-level value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, refuse("not_object", "body is a JSON %s: want a JSON object", jsonKind(v))
	}
	if err := normalize(obj, ""); err != nil {
		return nil, err
	}
	return obj, nil
}

// normalize turns each json.Number in place into int64 when integral, else
// float64, so conditions and templates see ordinary numbers. A number
// beyond float64 is refused, naming the field it is in: as ±Inf it could
// not be stored or sent on.
func normalize(v any, field string) error {
	set := func(e any, field string, put func(any)) error {
		n, ok := e.(json.Number)
		if !ok {
			return normalize(e, field)
		}
		if i, err := n.Int64(); err == nil {
			put(i)
			return nil
		}
		f, err := n.Float64()
		if err != nil {
			return refuse("bad_field", "field %q: number %s is out of range", field, textcut.Truncate(n.String(), quoteMax))
		}
		put(f)
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if err := set(e, k, func(n any) { x[k] = n }); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := set(e, field, func(n any) { x[i] = n }); err != nil {
				return err
			}
		}
	}
	return nil
}

// fill copies well-known fields from obj into ev. With strict set, a field
// present with an unusable type is an error naming it.
func fill(ev *Event, obj map[string]any, strict bool) error {
	var errs []error
	str := func(name string, dst *string) {
		v, ok := obj[name]
		if !ok || v == nil {
			return
		}
		if s, ok := v.(string); ok {
			*dst = s
			return
		}
		errs = append(errs, refuse("bad_field", "field %q: want a string, got %s", name, jsonKind(v)))
	}
	num := func(name string, set func(float64)) {
		v, ok := obj[name]
		if !ok || v == nil {
			return
		}
		f, err := number(v)
		if err != nil {
			errs = append(errs, refuse("bad_field", "field %q: %v", name, err))
			return
		}
		set(f)
	}
	str("domain", &ev.Domain)
	str("app", &ev.App)
	str("stream", &ev.Stream)
	str("uri", &ev.URI)
	str("event", &ev.Event)
	num("duration", func(f float64) { ev.Duration = f })
	unix := func(name string, dst *int64) {
		num(name, func(f float64) {
			if f >= math.MaxInt64 || f < math.MinInt64 { // int64 would wrap it into a nonsense date
				errs = append(errs, refuse("bad_field", "field %q: %v is not a Unix time in seconds", name, f))
				return
			}
			*dst = int64(f)
		})
	}
	unix("start_time", &ev.StartTime)
	unix("stop_time", &ev.StopTime)
	ev.Format = FormatOf(ev.URI)
	if v, ok := obj["push_args"]; ok && v != nil {
		args, err := stringMap(v)
		if err != nil {
			errs = append(errs, refuse("bad_field", "field \"push_args\": %v", err))
		}
		ev.PushArgs = args
	}
	if strict && len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// number accepts a JSON number or a numeric string, as Aliyun may send either.
func number(v any) (float64, error) {
	var f float64
	switch x := v.(type) {
	case int64:
		return float64(x), nil
	case float64:
		f = x
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return 0, fmt.Errorf("want a number, got the string %q", textcut.Truncate(x, quoteMax))
		}
	default:
		return 0, fmt.Errorf("want a number, got %s", jsonKind(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want a finite number")
	}
	return f, nil
}

func stringMap(v any) (map[string]string, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object, got %s", jsonKind(v))
	}
	out := make(map[string]string, len(obj))
	for k, e := range obj {
		switch x := e.(type) {
		case string:
			out[k] = x
		case int64, float64, bool:
			out[k] = fmt.Sprint(x)
		}
	}
	return out, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case int64, float64, json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// quoteMax bounds a value a refusal quotes: 40 bytes of it and the mark.
const quoteMax = 40 + len(textcut.Mark)
