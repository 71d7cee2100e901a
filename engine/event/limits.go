package event

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Bounds on a body's JSON. Aliyun's callbacks nest three levels and carry
// about ten keys; these leave room for any sensible generic event while
// keeping a hostile one from costing much to decode, match or store.
const (
	MaxDepth = 32   // nested objects and arrays
	MaxKeys  = 1000 // object keys in the whole body
)

// checkShape refuses what encoding/json would quietly accept: invalid
// UTF-8 (it would become U+FFFD), duplicate keys (the last would silently
// win, so a proxy and livehook could read different values), and bodies
// nested or keyed beyond MaxDepth and MaxKeys. It runs before decoding, so
// a deep body costs one linear scan. It does not check syntax; decoding
// does, and anything it misreads in invalid JSON is refused there anyway.
func checkShape(body []byte) error {
	if !utf8.Valid(body) {
		return refuse("invalid_utf8", "body is not valid UTF-8")
	}
	type frame struct {
		object  bool
		wantKey bool
		keys    map[string]struct{}
	}
	var stack []frame
	keys := 0
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			if len(stack) == MaxDepth {
				return refuse("too_deep", "JSON nested deeper than %d levels", MaxDepth)
			}
			stack = append(stack, frame{object: body[i] == '{', wantKey: body[i] == '{'})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].wantKey = true
			}
		case '"':
			end := stringEnd(body, i)
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				top := &stack[n-1]
				top.wantKey = false
				if keys++; keys > MaxKeys {
					return refuse("too_many_keys", "JSON has more than %d object keys", MaxKeys)
				}
				k := key(body[i:end])
				if _, dup := top.keys[k]; dup {
					return refuse("duplicate_key", "duplicate key %q in a JSON object", truncate(k, 40))
				}
				if top.keys == nil {
					top.keys = map[string]struct{}{}
				}
				top.keys[k] = struct{}{}
			}
			i = end - 1
		}
	}
	return nil
}

// stringEnd returns the index just past the string literal starting at
// body[i] (a quote), or len(body) if it is not closed.
func stringEnd(body []byte, i int) int {
	for j := i + 1; j < len(body); j++ {
		switch body[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(body)
}

// key is the value of a quoted key; escapes are resolved so "a" and
// "\u0061" are the same key, as they are to every JSON reader.
func key(quoted []byte) string {
	if bytes.IndexByte(quoted, '\\') < 0 {
		s := quoted[1:]
		if n := len(s); n > 0 && s[n-1] == '"' {
			s = s[:n-1]
		}
		return string(s)
	}
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return string(quoted) // invalid JSON: decoding will refuse it
	}
	return s
}
