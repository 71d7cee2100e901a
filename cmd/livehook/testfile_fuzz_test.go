package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/livehook/livehook/engine/sourceapi"
)

// FuzzParseTestFile: whatever a test file holds, reading it reports
// problems and never panics.
func FuzzParseTestFile(f *testing.F) {
	for _, name := range []string{"absence.test.yaml", "count-digest.test.yaml"} {
		data, err := os.ReadFile(filepath.Join(exampleTests, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("tests:\n  - {name: x, timeline: [{at: 1m, retry_of: a}, {at: 0s, id: a, retry_of: a}], expect: []}\n"))
	f.Add([]byte("tests: [{timeline: [{at: 0s, event: {uri: 3, duration: x}}, {at: 1s, restart: {down_for: -1s}}], expect: [{rule: r, between: [1m]}]}]"))
	path := filepath.Join(exampleTests, "fuzz.test.yaml") // fixtures resolve beside the examples
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := parseTest(path, data, sourceapi.Default())
		if err == nil && file == nil {
			t.Fatal("no file and no error")
		}
	})
}
