package rules_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/livehook/livehook/actions/log" // type: log, which the fixtures use
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
)

// probeConfig is what a probe instance accepts: one setting of each kind
// a real action has.
type probeConfig struct {
	S      string        `yaml:"s"`
	N      int           `yaml:"n"`
	F      float64       `yaml:"f"`
	B      bool          `yaml:"b"`
	D      time.Duration `yaml:"d"`
	Token  secret.Secret `yaml:"token"`
	Params probeParams   `yaml:",inline"`
}

type probeParams struct {
	Text *tmpl.Template `yaml:"text"`
}

// probe is an action type for tests: it records every instance it opens
// and counts Close calls.
type probe struct {
	mu        sync.Mutex
	instances []*probeInstance
}

type probeInstance struct {
	name   string
	cfg    probeConfig
	closes int
}

func (p *probe) typ() actionapi.Type {
	return actionapi.Type{Name: "probe", Doc: "test action", Open: func(s actionapi.Settings) (actionapi.Instance, error) {
		var c probeConfig
		if err := s.Decode(&c); err != nil {
			return nil, err
		}
		in := &probeInstance{name: s.Name, cfg: c}
		p.mu.Lock()
		p.instances = append(p.instances, in)
		p.mu.Unlock()
		return &probeHandle{p: p, in: in}, nil
	}}
}

// counts returns how many instances were opened and how many Close calls
// each got.
func (p *probe) counts() (opened int, closes []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, in := range p.instances {
		closes = append(closes, in.closes)
	}
	return len(p.instances), closes
}

func (p *probe) config(name string) (probeConfig, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, in := range p.instances {
		if in.name == name {
			return in.cfg, true
		}
	}
	return probeConfig{}, false
}

type probeHandle struct {
	p  *probe
	in *probeInstance
}

func (h *probeHandle) Step(with actionapi.Params) (actionapi.Step, error) {
	params := h.in.cfg.Params
	if err := with.Decode(&params); err != nil {
		return nil, err
	}
	return probeStep{params}, nil
}

func (h *probeHandle) Close() error {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	h.in.closes++
	return nil
}

type probeStep struct{ p probeParams }

func (s probeStep) Plan(in actionapi.Input) (actionapi.Plan, error) {
	text, err := s.p.Text.Render(in.Data())
	return actionapi.Plan{Target: "probe", Body: text}, err
}

func (probeStep) Do(context.Context, actionapi.Plan) actionapi.Result {
	return actionapi.Result{Outcome: actionapi.Delivered}
}

// isolated returns a registry of its own holding a fresh probe and the log
// type, so probe counts never mix between tests or fuzz runs.
func isolated(t testing.TB) (*actionapi.Registry, *probe) {
	t.Helper()
	logType, ok := actionapi.Default().Lookup("log")
	if !ok {
		t.Fatal("the log action is not registered")
	}
	p := &probe{}
	r := actionapi.NewRegistry()
	for _, ty := range []actionapi.Type{p.typ(), logType} {
		if err := r.Add(ty); err != nil {
			t.Fatal(err)
		}
	}
	return r, p
}

// env is a fixed environment, so tests do not depend on the machine's.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func options(reg *actionapi.Registry, vars map[string]string) rules.Options {
	return rules.Options{
		Registry: reg,
		Getenv:   env(vars),
		Deps:     actionapi.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HTTP: actionapi.NewHTTP(nil), Now: time.Now},
	}
}

// writeRules writes src to a fresh rules.yaml and returns its path.
func writeRules(t testing.TB, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ruleNames(s *rules.Set) []string {
	var out []string
	for _, r := range s.Rules {
		out = append(out, r.Name)
	}
	return out
}
