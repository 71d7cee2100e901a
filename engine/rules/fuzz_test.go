package rules_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

// FuzzLoad: no rules file may panic the loader, and every instance it
// opens is closed exactly once, whether the load fails or the set is
// retired.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"valid", "valid/multi", "invalid", "invalid/dup-action-across-files"} {
		files, _ := filepath.Glob(filepath.Join(fixtureDir, dir, "*.y*ml"))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(threeProbes))
	f.Add([]byte("actions:\n  p: {type: probe, n: ${N}, d: ${D:-1s}, text: \"{{ .stream }}\"}\nrules:\n  - name: r\n    when: payload.x > 3\n    do: [{action: p, with: {text: x}}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("rules:\n  - &r {name: x, throttle: *r}\n"))
	vars := map[string]string{"N": "3", "D": "2s", "HOST": "h"}
	var m rules.Matcher
	f.Fuzz(func(t *testing.T, src []byte) {
		reg, p := isolated(t)
		path := filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := rules.Load(path, options(reg, vars))
		if err == nil {
			m.Match(set, &event.Event{Kind: event.KindFile, Stream: "s", Payload: map[string]any{"x": "y"}})
			set.Retire()
		}
		opened, closes := p.counts()
		for i, c := range closes {
			if c != 1 {
				t.Fatalf("instance %d of %d closed %d times (load error: %v)", i, opened, c, err)
			}
		}
	})
}
