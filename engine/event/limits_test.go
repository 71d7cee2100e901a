package event_test

import (
	"bytes"
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
		`{"b":{"c":1}` + manyKeys(40) + `,"k7":1}`,
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
		if k, dup := duplicateKey(body); dup {
			t.Fatalf("accepted a body with the key %q twice in one object", k)
		}
	})
}

// duplicateKey finds a repeated key the slow, sure way: encoding/json's
// tokenizer, which resolves every escape.
func duplicateKey(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type obj struct {
		keys    map[string]bool
		wantKey bool
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *obj
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &obj{keys: map[string]bool{}, wantKey: true})
				continue
			case '[':
				stack = append(stack, nil)
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.wantKey {
				if top.keys[v] {
					return v, true
				}
				top.keys[v] = true
				top.wantKey = false
				continue
			}
		}
		if len(stack) > 0 && stack[len(stack)-1] != nil {
			stack[len(stack)-1].wantKey = true // a value ended: a key comes next
		}
	}
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
