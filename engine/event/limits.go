package event

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/livehook/livehook/internal/textcut"
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
	// Keys of the open objects live on one stack, each object's after its
	// parent's, so a typical body costs no allocation per object; an object
	// with many keys gets a set.
	type frame struct {
		object, wantKey bool
		start           int                 // its keys are keys[start:]
		set             map[string]struct{} // once it has more than linearKeys
	}
	const linearKeys = 32
	var stack [MaxDepth]frame
	keys := make([][]byte, 0, 16) // enough for a callback; more grows it
	depth, total := 0, 0
	for i := 0; i < len(body); i++ {
		next := bytes.IndexAny(body[i:], `{}[],"`)
		if next < 0 {
			break
		}
		i += next
		switch body[i] {
		case '{', '[':
			if depth == MaxDepth {
				return refuse("too_deep", "JSON nested deeper than %d levels", MaxDepth)
			}
			stack[depth] = frame{object: body[i] == '{', wantKey: body[i] == '{', start: len(keys)}
			depth++
		case '}', ']':
			if depth > 0 {
				depth--
				keys = keys[:stack[depth].start]
			}
		case ',':
			if depth > 0 && stack[depth-1].object {
				stack[depth-1].wantKey = true
			}
		case '"':
			end := stringEnd(body, i)
			if depth > 0 && stack[depth-1].wantKey {
				top := &stack[depth-1]
				top.wantKey = false
				if total++; total > MaxKeys {
					return refuse("too_many_keys", "JSON has more than %d object keys", MaxKeys)
				}
				if k := key(body[i:end]); !addKey(top.set, &keys, top.start, k) {
					return refuse("duplicate_key", "duplicate key %q in a JSON object", textcut.Truncate(string(k), quoteMax))
				} else if top.set == nil && len(keys)-top.start > linearKeys {
					top.set = make(map[string]struct{}, 2*linearKeys)
					for _, prev := range keys[top.start:] {
						top.set[string(prev)] = struct{}{}
					}
				}
			}
			i = end - 1
		}
	}
	return nil
}

// addKey records key k of the object whose keys are (*keys)[start:], or
// in set once it has one; false if the object already has it.
func addKey(set map[string]struct{}, keys *[][]byte, start int, k []byte) bool {
	if set != nil {
		if _, dup := set[string(k)]; dup {
			return false
		}
		set[string(k)] = struct{}{}
		return true
	}
	for _, prev := range (*keys)[start:] {
		if bytes.Equal(prev, k) {
			return false
		}
	}
	*keys = append(*keys, k)
	return true
}

// stringEnd returns the index just past the string literal starting at
// body[i] (a quote), or len(body) if it is not closed.
func stringEnd(body []byte, i int) int {
	for j := i + 1; j < len(body); {
		q := bytes.IndexByte(body[j:], '"')
		if q < 0 {
			break
		}
		j += q
		// The quote is escaped if an odd number of backslashes precede it.
		n := 0
		for k := j - 1; k > i && body[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
	return len(body)
}

// key is the value of a quoted key; escapes are resolved so "a" and
// "\u0061" are the same key, as they are to every JSON reader.
func key(quoted []byte) []byte {
	s := quoted[1:]
	if n := len(s); n > 0 && s[n-1] == '"' {
		s = s[:n-1]
	}
	if bytes.IndexByte(s, '\\') < 0 {
		return s
	}
	var v string
	if json.Unmarshal(quoted, &v) != nil {
		return quoted // invalid JSON: decoding will refuse it
	}
	return []byte(v)
}
