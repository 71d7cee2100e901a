package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/livehook/livehook/engine/event"
)

// FuzzDecodeGeneric: no body may panic the decoder, and an accepted body
// is valid UTF-8 JSON within the limits whose payload encodes again.
func FuzzDecodeGeneric(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":{"b":[1,2,{"c":"d"}]}}`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"k":"}{\"k\":"}`,
		`{"x":1e999}`, "{\"x\":\"\xff\"}", strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40),
		`{"a":"\\"}`, `{"a\"b":1,"a\"b":2}`, `{"a":[` + strings.Repeat(`{"k":1},`, 10) + `{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.DecodeGeneric("fuzz", body)
		if err != nil {
			var de *event.DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v (%T) is not a DecodeError with a reason", err, err)
			}
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("accepted a body that is not valid UTF-8 JSON: %q", body)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		depth, keys := shape(ev.Payload)
		if depth > event.MaxDepth || keys > event.MaxKeys {
			t.Fatalf("accepted depth %d, %d keys: beyond the limits", depth, keys)
		}
	})
}

// shape measures a decoded value: nesting depth and object keys in all.
func shape(v any) (depth, keys int) {
	switch x := v.(type) {
	case map[string]any:
		keys = len(x)
		for _, e := range x {
			d, k := shape(e)
			depth, keys = max(depth, d), keys+k
		}
		return depth + 1, keys
	case []any:
		for _, e := range x {
			d, k := shape(e)
			depth, keys = max(depth, d), keys+k
		}
		return depth + 1, keys
	}
	return 0, 0
}
