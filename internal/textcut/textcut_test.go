package textcut_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/livehook/livehook/internal/textcut"
)

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{name: "short enough", s: "abc", n: 3, want: "abc"},
		{name: "cut with a mark", s: "abcdef", n: 5, want: "ab…"},
		{name: "never inside a character", s: "录录录", n: 8, want: "录…"},
		{name: "too small for the mark", s: "abcdef", n: 2, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := textcut.Truncate(tc.s, tc.n)
			if got != tc.want || len(got) > tc.n {
				t.Errorf("Truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{name: "whole", s: "abc", n: 3, want: "abc"},
		{name: "more than whole", s: "abc", n: 10, want: "abc"},
		{name: "cut", s: "abcdef", n: 4, want: "abcd"},
		{name: "never inside a character", s: "a录b", n: 3, want: "a"},
		{name: "up to a character's end", s: "a录b", n: 4, want: "a录"},
		{name: "nothing", s: "abc", n: 0, want: ""},
		{name: "negative", s: "abc", n: -1, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := textcut.Prefix(tc.s, tc.n); got != tc.want {
				t.Errorf("Prefix(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
			}
		})
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("录录录", 8)
	f.Add("abcdef", 2)
	f.Add("", 0)
	f.Add("", -1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := textcut.Truncate(s, n)
		switch {
		case len(s) <= n:
			if got != s {
				t.Fatalf("Truncate(%q, %d) = %q, want s: it fits", s, n, got)
			}
			return
		case n < len(textcut.Mark):
			if got != "" {
				t.Fatalf("Truncate(%q, %d) = %q, want \"\": not even the mark fits", s, n, got)
			}
			return
		}
		kept, ok := strings.CutSuffix(got, textcut.Mark)
		if !ok || !strings.HasPrefix(s, kept) || len(got) > n {
			t.Fatalf("Truncate(%q, %d) = %q: want a prefix of s and the mark, in at most n bytes", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q split a character", s, n, got)
		}
	})
}
