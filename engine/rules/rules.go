// Package rules loads a rules file or directory into a Set: named action
// instances and ordered rules whose conditions are compiled expr programs.
// A load reports every problem with its file:line:col, and either yields a
// complete Set or nothing.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
)

// Set is one loaded, consistent rule set. It is immutable once loaded.
type Set struct {
	Path    string
	Files   []string
	Hash    string // of the files' names and contents
	Actions []*Action
	Rules   []*Rule
	// Secrets knows every secret value in the set; text shown to anyone
	// passes through it.
	Secrets *secret.Redactor
	// Sources are the `sources:` entries: how intake admits callbacks.
	Sources []*Source
	// Domains is `domains:`, ingest domain → streaming domain, in lower
	// case; see MapDomain.
	Domains map[string]string
	// Sweeper is `sweeper:`, nil without one; see sweeper.go.
	Sweeper *Sweeper

	instances []actionapi.Instance // every instance, named and inline, to close
	index     *index               // which rules to evaluate for an event
	answers   []*Rule              // the rules with answer:, in order; see answer.go

	mu      sync.Mutex
	refs    int
	retired bool
}

// Action is a named instance from `actions:`.
type Action struct {
	Name     string
	Type     string
	File     string
	Line     int
	Instance actionapi.Instance
	Delivery actionapi.DeliveryPolicy
}

// Rule is one rule, compiled.
type Rule struct {
	Name        string
	Description string
	When        string // source of the condition; empty matches every event
	Enabled     bool
	Shadow      bool // mode: shadow: what it matches or fires is recorded, and its steps do not run
	Stop        bool
	Throttle    *Throttle
	// Temporal is set for a rule over time (by, track, a temporal block,
	// or prev in its condition): the engine's correlate stage evaluates
	// it, with its state, rather than Match.
	Temporal *Temporal
	// Answer is set for a rule that answers on-demand recording callbacks
	// (answer.go). Such a rule may have no steps; Match leaves it out then.
	Answer *event.Answer
	Steps  []*Step
	File   string
	Line   int

	program     *vm.Program
	constraints []constraint // what an event must meet for the condition to hold
}

// Step is one entry of a rule's `do:` list.
type Step struct {
	Index    int
	Action   string // instance name: the `actions:` key, or rule/do[i] for an inline step
	Type     string
	Step     actionapi.Step
	Delivery actionapi.DeliveryPolicy
}

// Step finds step i of the named rule; nil if the rule or step is gone.
func (s *Set) Step(rule string, i int) *Step {
	for _, r := range s.Rules {
		if r.Name == rule {
			for _, st := range r.Steps {
				if st.Index == i {
					return st
				}
			}
		}
	}
	return nil
}

// Rule finds a rule by name.
func (s *Set) Rule(name string) *Rule {
	for _, r := range s.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Throttle holds back repeated deliveries of a rule for one key.
type Throttle struct {
	By     []string      // event fields that make the key
	Window time.Duration // after a delivery, matches for the same key are held back this long
}

// Options tune a load.
type Options struct {
	Registry *actionapi.Registry         // action types; default actionapi.Default()
	Deps     actionapi.Deps              // handed to every instance, with its defaults filled in
	Getenv   func(string) (string, bool) // default os.LookupEnv
}

// Load reads path (a file, or a directory of *.yaml/*.yml files loaded in
// name order) and builds a Set. On failure the error carries every problem
// (see yamlconf.Diagnostics) and no instance is left open.
func Load(path string, o Options) (*Set, error) {
	if o.Registry == nil {
		o.Registry = actionapi.Default()
	}
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	o.Deps = o.Deps.WithDefaults()
	files, err := listFiles(path)
	if err != nil {
		return nil, err
	}
	l := &loader{opts: o, set: &Set{Path: path, Files: files, Secrets: &secret.Redactor{}},
		actions: map[string]*Action{}, broken: map[string]bool{}, rules: map[string]*Rule{}, failed: map[*yaml.Node]bool{}}
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			l.set.closeInstances()
			return nil, fmt.Errorf("load %s: %w", f, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(f), len(data))
		h.Write(data)
		l.file(f, data)
	}
	if err := l.err(); err != nil {
		l.set.closeInstances()
		return nil, err
	}
	l.set.Hash = hex.EncodeToString(h.Sum(nil))[:16]
	l.set.index = newIndex(l.set.Rules)
	return l.set, nil
}

// listFiles resolves path to the files to load.
func listFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		// Hidden entries include a Kubernetes ConfigMap's ..data machinery.
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		full := filepath.Join(path, name)
		if st, err := os.Stat(full); err != nil || !st.Mode().IsRegular() {
			continue // a dangling symlink or a directory named *.yaml
		}
		files = append(files, full)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("load rules: no *.yaml or *.yml files in %s", path)
	}
	return files, nil
}

// Acquire marks the set as in use by one event's processing. It returns
// false once the set has been retired; the caller then takes the current set.
func (s *Set) Acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return false
	}
	s.refs++
	return true
}

// Release ends a use begun by Acquire.
func (s *Set) Release() {
	s.mu.Lock()
	s.refs--
	done := s.retired && s.refs == 0
	s.mu.Unlock()
	if done {
		s.closeInstances()
	}
}

// Retire marks a replaced set: its instances close once the last
// in-flight use is released.
func (s *Set) Retire() {
	s.mu.Lock()
	s.retired = true
	done := s.refs == 0
	s.mu.Unlock()
	if done {
		s.closeInstances()
	}
}

func (s *Set) closeInstances() {
	for _, in := range s.instances {
		_ = in.Close() // nothing is waiting on a retired instance; it logs its own trouble
	}
	s.instances = nil
}

// Summary counts what the set holds, for `livehook check` and logs.
func (s *Set) Summary() string {
	enabled := 0
	for _, r := range s.Rules {
		if r.Enabled {
			enabled++
		}
	}
	return fmt.Sprintf("%d file(s), %d action(s), %d rule(s) (%d enabled)",
		len(s.Files), len(s.Actions), len(s.Rules), enabled)
}
