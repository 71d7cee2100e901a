package event

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// parseObject decodes in one pass a body that decodeObject accepts: a JSON
// object, valid UTF-8, within MaxDepth and MaxKeys, without a duplicate key
// or a number beyond float64, and nothing but white space after it. Its
// value is what checkObject makes of such a body: objects as
// map[string]any, arrays as []any, numbers as int64 when ParseInt takes
// them and float64 otherwise, strings unescaped as encoding/json unescapes
// them. For any other body it returns false and leaves saying why to
// checkObject, so a refusal reads the same whichever rule it breaks.
func parseObject(body []byte) (map[string]any, bool) {
	if !utf8.Valid(body) {
		return nil, false
	}
	p := parser{s: body}
	if len(body) <= shareMax {
		p.text = string(body)
	}
	p.space()
	if !p.at('{') {
		return nil, false
	}
	obj, ok := p.object()
	if !ok {
		return nil, false
	}
	p.space()
	return obj, p.i == len(p.s)
}

// shareMax is the largest body whose strings share one copy of it, as
// Aliyun's callbacks of a few hundred bytes do: one allocation instead of
// one per key and value. A larger body's strings are copied one by one,
// so that a field kept on its own (a rule's key) does not keep the whole
// body alive.
const shareMax = 4 << 10

// parser reads s from i; depth and keys count what checkShape bounds.
type parser struct {
	s           []byte
	text        string // s as a string when it is shared; else ""
	i           int
	depth, keys int
}

// str is s[start:end] as a string.
func (p *parser) str(start, end int) string {
	if p.text != "" {
		return p.text[start:end]
	}
	return string(p.s[start:end])
}

func (p *parser) at(c byte) bool { return p.i < len(p.s) && p.s[p.i] == c }

func (p *parser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value() (any, bool) {
	if p.i >= len(p.s) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	return nil, false
}

func (p *parser) object() (map[string]any, bool) {
	if p.depth++; p.depth > MaxDepth {
		return nil, false
	}
	p.i++ // the brace
	obj := map[string]any{}
	p.space()
	if p.at('}') {
		p.i++
		p.depth--
		return obj, true
	}
	for {
		if p.keys++; p.keys > MaxKeys || !p.at('"') {
			return nil, false
		}
		k, ok := p.string()
		if !ok {
			return nil, false
		}
		p.space()
		if !p.at(':') {
			return nil, false
		}
		p.i++
		p.space()
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		n := len(obj)
		if obj[k] = v; len(obj) == n {
			return nil, false // a duplicate key
		}
		p.space()
		switch {
		case p.at(','):
			p.i++
			p.space()
		case p.at('}'):
			p.i++
			p.depth--
			return obj, true
		default:
			return nil, false
		}
	}
}

func (p *parser) array() ([]any, bool) {
	if p.depth++; p.depth > MaxDepth {
		return nil, false
	}
	p.i++ // the bracket
	// [] is an empty array, not null.
	arr := []any{}
	p.space()
	if p.at(']') {
		p.i++
		p.depth--
		return arr, true
	}
	for {
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		arr = append(arr, v)
		p.space()
		switch {
		case p.at(','):
			p.i++
			p.space()
		case p.at(']'):
			p.i++
			p.depth--
			return arr, true
		default:
			return nil, false
		}
	}
}

func (p *parser) literal(word string) bool {
	if len(p.s)-p.i < len(word) || string(p.s[p.i:p.i+len(word)]) != word {
		return false
	}
	p.i += len(word)
	return true
}

// string reads the string literal at i.
func (p *parser) string() (string, bool) {
	start := p.i + 1
	for j := start; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			p.i = j + 1
			return p.str(start, j), true
		case c == '\\':
			return p.unescape(start, j)
		case c < ' ':
			return "", false
		}
	}
	return "", false
}

// unescape reads the rest of a string literal from its first escape, at j,
// resolving escapes as encoding/json does: a \u surrogate that is not half
// of a pair becomes U+FFFD.
func (p *parser) unescape(start, j int) (string, bool) {
	b := append(make([]byte, 0, j-start+16), p.s[start:j]...)
	for j < len(p.s) {
		c := p.s[j]
		switch {
		case c == '"':
			p.i = j + 1
			return string(b), true
		case c < ' ':
			return "", false
		case c != '\\':
			b = append(b, c)
			j++
			continue
		case j+1 == len(p.s):
			return "", false
		}
		switch e := p.s[j+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := p.hex4(j)
			if r < 0 {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				if pair := utf16.DecodeRune(r, p.hex4(j+6)); pair != unicode.ReplacementChar {
					r = pair
					j += 6
				} else {
					r = unicode.ReplacementChar
				}
			}
			b = utf8.AppendRune(b, r)
			j += 6
			continue
		default:
			return "", false
		}
		j += 2
	}
	return "", false
}

// hex4 is the code unit of the \uXXXX escape at j; -1 if there is none.
func (p *parser) hex4(j int) rune {
	if len(p.s)-j < 6 || p.s[j] != '\\' || p.s[j+1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range p.s[j+2 : j+6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// number reads the number at i as normalize would have it.
func (p *parser) number() (any, bool) {
	start, j := p.i, p.i
	digits := func() bool {
		k := j
		for j < len(p.s) && '0' <= p.s[j] && p.s[j] <= '9' {
			j++
		}
		return j > k
	}
	if p.s[j] == '-' {
		j++
	}
	switch {
	case j < len(p.s) && p.s[j] == '0':
		j++
	case !digits():
		return nil, false
	}
	whole := true
	if j < len(p.s) && p.s[j] == '.' {
		j++
		if whole = false; !digits() {
			return nil, false
		}
	}
	if j < len(p.s) && (p.s[j] == 'e' || p.s[j] == 'E') {
		if j++; j < len(p.s) && (p.s[j] == '+' || p.s[j] == '-') {
			j++
		}
		if whole = false; !digits() {
			return nil, false
		}
	}
	p.i = j
	text := p.str(start, j)
	if whole { // ParseInt refuses a fraction or exponent; skipping it spares its error
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n, true
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	return f, err == nil
}
