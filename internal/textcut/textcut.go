// Package textcut shortens text to a budget in bytes without splitting a
// character: messages that a service refuses beyond a size, and excerpts
// of replies and payloads quoted in errors and logs.
package textcut

import "unicode/utf8"

// Mark ends text that Truncate cut.
const Mark = "…"

// Truncate returns s if it fits in n bytes; otherwise as much of s as fits
// in n bytes together with Mark, then Mark, so that a reader sees the text
// was cut. It returns "" when n is too small even for Mark.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < len(Mark) {
		return ""
	}
	return Prefix(s, n-len(Mark)) + Mark
}

// Prefix returns the longest prefix of s of at most n bytes that does not
// split a character.
func Prefix(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if n >= len(s) {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
