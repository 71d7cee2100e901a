package event

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// parseSeeds are bodies on the edges of what checkObject accepts: every
// captured callback, and JSON that encoding/json reads in its own way
// (escapes, surrogates, numbers) or refuses.
func parseSeeds(t testing.TB) [][]byte {
	files, err := filepath.Glob("../../testdata/events/*.json")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("../../testdata/events/*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]byte
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	var keys strings.Builder
	for i := range MaxKeys {
		fmt.Fprintf(&keys, `,"k%d":%d`, i, i)
	}
	for _, s := range []string{
		``, ` `, `{}`, ` {} `, "\t{\n}\r\n", `{"a":{},"b":[],"c":[[]],"d":[{}]}`, `{"a":null,"b":true,"c":false}`,
		`[]`, `"s"`, `1`, `null`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,"a":1}`, `{"a":[1,]}`, `{"a":[,1]}`,
		`{"a":1}{}`, `{"a":1} x`, `{"a":1}]`, `{"a":tru}`, `{"a":nul}`, `{"a":falsey}`, `{"a":True}`, "\ufeff{}",
		`{"a":0}`, `{"a":-0}`, `{"a":-0.0}`, `{"a":0.5}`, `{"a":1e2}`, `{"a":1E+2}`, `{"a":1e-2}`, `{"a":-1.5e-300}`,
		`{"a":9223372036854775807}`, `{"a":9223372036854775808}`, `{"a":-9223372036854775808}`, `{"a":-9223372036854775809}`,
		`{"a":1e400}`, `{"a":-1e400}`, `{"a":1e-400}`, `{"a":[1e999]}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`,
		`{"a":+1}`, `{"a":1e}`, `{"a":1e+}`, `{"a":0x10}`, `{"a":1.5.5}`, `{"a":--1}`, `{"a":NaN}`, `{"a":Infinity}`,
		`{"a":"\"\\\/\b\f\n\r\t"}`, `{"a":"\u00e9\u4e2d"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud83d"}`, `{"a":"\ude00"}`,
		`{"a":"\ud83d\u0041"}`, `{"a":"\ud83dx"}`, `{"a":"\ud83d\ud83d\ude00"}`, `{"a":"\uDEAD\uBEEF"}`, `{"a":"\u12"}`,
		`{"a":"\u12g4"}`, `{"a":"\x"}`, `{"a":"\'"}`, `{"a":"\`, `{"a":"abc`, "{\"a\":\"\x01\"}", "{\"a\":\"\x7f\"}",
		"{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}", `{"a":"é中😀"}`, `{"\u0061":1,"a":2}`, `{"a":1,"a":2}`,
		`{"a":{"a":{"a":1}}}`, `{"a":[{"k":1},{"k":1}]}`, `{"a\"b":1,"a\"b":2}`, `{"\ud800":1,"\ufffd":2}`,
		`{"x":` + deep(MaxDepth-1) + `}`, `{"x":` + deep(MaxDepth) + `}`, `{` + keys.String()[1:] + `}`,
		`{"a":1` + keys.String() + `}`, `{"a":1 x,"a":2}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzParseObject: the one-pass parser takes exactly the bodies
// checkObject accepts, and makes the same value of them.
func FuzzParseObject(f *testing.F) {
	for _, body := range parseSeeds(f) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := parseObject(body)
		want, err := checkObject(body)
		switch {
		case ok && err != nil:
			t.Errorf("%q: parsed, but checkObject refuses it: %v", body, err)
		case !ok && err == nil:
			t.Errorf("%q: not parsed, but checkObject accepts it as %v", body, want)
		case ok && (!reflect.DeepEqual(got, want) || fmt.Sprint(got) != fmt.Sprint(want)): // Sprint tells -0 from 0
			t.Errorf("%q: parsed as %#v, checkObject makes %#v", body, got, want)
		}
	})
}
