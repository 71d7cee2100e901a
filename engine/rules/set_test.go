package rules_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/livehook/livehook/engine/rules"
)

// Two named probe instances and one inline one: three to close.
const threeProbes = `actions:
  a: {type: probe}
  b: {type: probe}
rules:
  - name: r
    do:
      - action: a
      - type: probe
        text: "{{ .stream }}"
`

func TestSetLifecycle(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *rules.Set, closed func() []int)
	}{
		{"retire with nothing in flight closes at once", func(t *testing.T, s *rules.Set, closed func() []int) {
			s.Retire()
			if got := closed(); !slices.Equal(got, []int{1, 1, 1}) {
				t.Errorf("closes = %v, want each instance once", got)
			}
		}},
		{"retire waits for the last release", func(t *testing.T, s *rules.Set, closed func() []int) {
			for range 2 {
				if !s.Acquire() {
					t.Fatal("Acquire on a live set failed")
				}
			}
			s.Retire()
			if got := closed(); !slices.Equal(got, []int{0, 0, 0}) {
				t.Fatalf("closes after Retire with 2 in flight = %v, want none", got)
			}
			if s.Acquire() {
				t.Error("Acquire succeeded on a retired set")
			}
			s.Release()
			if got := closed(); !slices.Equal(got, []int{0, 0, 0}) {
				t.Fatalf("closes with 1 still in flight = %v, want none", got)
			}
			s.Release()
			if got := closed(); !slices.Equal(got, []int{1, 1, 1}) {
				t.Errorf("closes after the last release = %v, want each once", got)
			}
		}},
		{"release before retire closes nothing", func(t *testing.T, s *rules.Set, closed func() []int) {
			s.Acquire()
			s.Release()
			if got := closed(); !slices.Equal(got, []int{0, 0, 0}) {
				t.Errorf("closes = %v, want none while the set is current", got)
			}
			s.Retire()
			if got := closed(); !slices.Equal(got, []int{1, 1, 1}) {
				t.Errorf("closes = %v after Retire", got)
			}
		}},
		{"retiring twice closes once", func(t *testing.T, s *rules.Set, closed func() []int) {
			s.Retire()
			s.Retire()
			if got := closed(); !slices.Equal(got, []int{1, 1, 1}) {
				t.Errorf("closes = %v, want each once", got)
			}
		}},
		{"concurrent use", func(t *testing.T, s *rules.Set, closed func() []int) {
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 16 {
				wg.Go(func() {
					<-start
					for range 200 {
						if !s.Acquire() {
							return
						}
						s.Release()
					}
				})
			}
			wg.Go(func() { <-start; s.Retire() })
			close(start)
			wg.Wait()
			if got := closed(); !slices.Equal(got, []int{1, 1, 1}) {
				t.Errorf("closes = %v, want each once", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, p := isolated(t)
			s, err := rules.Load(writeRules(t, threeProbes), options(reg, nil))
			if err != nil {
				t.Fatal(err)
			}
			if opened, _ := p.counts(); opened != 3 {
				t.Fatalf("opened %d instances, want 3", opened)
			}
			tt.run(t, s, func() []int { _, c := p.counts(); return c })
		})
	}
}

// A failed load leaves no instance open: every instance opened before the
// problem was found is closed once.
func TestFailedLoadClosesInstances(t *testing.T) {
	reg, p := isolated(t)
	_, err := rules.Load(writeRules(t, threeProbes+"  - name: broken\n    when: duraton > 1\n    do: [{action: b}]\n"), options(reg, nil))
	if err == nil {
		t.Fatal("loaded a rule with a misspelt field")
	}
	opened, closes := p.counts()
	if opened != 3 || !slices.Equal(closes, []int{1, 1, 1}) {
		t.Errorf("opened %d, closes %v; want 3 opened and each closed once", opened, closes)
	}
}
