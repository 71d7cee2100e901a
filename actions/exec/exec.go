// Package execaction is the `exec` action: it runs a local command directly,
// never through a shell, with the event as JSON on its stdin and a clean
// environment describing the event.
package execaction

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/internal/subprocess"
)

func init() {
	actionapi.Register(actionapi.Type{
		Name: "exec",
		Doc:  "run a local command (no shell) with the event as JSON on stdin",
		Open: open,
	})
}

const (
	defaultTimeout = 30 * time.Second
	// outputLimit is how much of each of stdout and stderr is kept; the
	// rest is counted, so a chatty command cannot grow the daemon's memory.
	outputLimit = 4 << 10
	// exTempFail is EX_TEMPFAIL from sysexits.h: "try again later".
	exTempFail = 75
)

// passed are the daemon's environment variables a command inherits; no
// other one is: the daemon's environment holds its secrets.
var passed = []string{"PATH", "HOME", "LANG", "TZ"}

// Params are an exec instance's settings; a step's `with:` may override
// each of them.
type Params struct {
	Command *tmpl.Template   `yaml:"command"` // required; run directly, not by a shell
	Args    []*tmpl.Template `yaml:"args"`    // replaced whole by `with:`
	Timeout time.Duration    `yaml:"timeout"` // default 30s; then the process group is killed
	Dir     string           `yaml:"dir"`     // working directory; default: the daemon's
	// Env adds variables, merged by name over the instance's; a null value
	// removes one.
	Env map[string]*tmpl.Template `yaml:"env"`
}

type instance struct {
	name     string
	defaults Params
	logger   *slog.Logger
	secrets  *secret.Redactor
}

func open(s actionapi.Settings) (actionapi.Instance, error) {
	var p Params
	if err := s.Decode(&p); err != nil {
		return nil, err
	}
	defaults, err := Params{Timeout: defaultTimeout}.override(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	return &instance{name: s.Name, defaults: defaults, logger: s.Deps.Logger, secrets: s.Secrets}, nil
}

// override returns p with the values set in w, validated.
func (p Params) override(w Params) (Params, error) {
	if w.Command != nil {
		p.Command = w.Command
	}
	if w.Args != nil {
		p.Args = w.Args
	}
	if w.Timeout != 0 {
		p.Timeout = w.Timeout
	}
	if w.Dir != "" {
		p.Dir = w.Dir
	}
	if w.Env != nil {
		env := maps.Clone(p.Env)
		if env == nil {
			env = map[string]*tmpl.Template{}
		}
		for name, t := range w.Env {
			if !validEnvName(name) {
				return Params{}, fmt.Errorf("env: %q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
			}
			if strings.HasPrefix(name, "LIVEHOOK_") {
				return Params{}, fmt.Errorf("env: %s: the LIVEHOOK_ prefix is reserved for the event's variables", name)
			}
			env[name] = t
		}
		p.Env = env
	}
	if p.Command.IsZero() {
		return Params{}, errors.New("command is required")
	}
	if p.Timeout < 0 {
		return Params{}, fmt.Errorf("timeout %s: want a positive duration", p.Timeout)
	}
	return p, nil
}

func (i *instance) Step(with actionapi.Params) (actionapi.Step, error) {
	// Decode into a zero Params so that `env:` merges by name over the
	// instance's variables instead of replacing them all.
	var w Params
	if err := with.Decode(&w); err != nil {
		return nil, err
	}
	p, err := i.defaults.override(w)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", i.name, err)
	}
	return &step{i: i, params: p}, nil
}

func (i *instance) Close() error { return nil }

type step struct {
	i      *instance
	params Params
}

// run is a rendered command, the Plan's Payload.
type run struct {
	command string
	args    []string
	env     []string
	dir     string
	stdin   []byte
	timeout time.Duration
	eventID string
	rule    string
}

func (s *step) Plan(in actionapi.Input) (actionapi.Plan, error) {
	data := in.Data()
	command, err := render("command", s.params.Command, data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	if command == "" {
		return actionapi.Plan{}, errors.New("command: rendered empty")
	}
	args := make([]string, len(s.params.Args))
	for n, t := range s.params.Args {
		if args[n], err = render(fmt.Sprintf("args[%d]", n), t, data); err != nil {
			return actionapi.Plan{}, err
		}
	}
	env, err := s.env(in, data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	stdin, err := event.AppendJSON(nil, in.Event)
	if err != nil {
		return actionapi.Plan{}, fmt.Errorf("stdin: %w", err)
	}
	names := slices.Sorted(maps.Keys(env))
	r := &run{
		command: command, args: args, dir: s.params.Dir, stdin: stdin,
		timeout: s.params.Timeout, eventID: in.Event.ID, rule: in.Rule,
	}
	for _, k := range names {
		r.env = append(r.env, k+"="+env[k])
	}
	shownArgs := make([]string, len(args))
	for n, a := range args {
		shownArgs[n] = s.i.secrets.Redact(a)
	}
	info := map[string]any{"args": shownArgs, "env": names, "timeout": r.timeout.String()}
	if r.dir != "" {
		info["dir"] = r.dir
	}
	return actionapi.Plan{
		Target:  s.i.secrets.Redact(command),
		Body:    json.RawMessage(stdin),
		Info:    info,
		Payload: r,
	}, nil
}

// render renders one template that becomes an argument or a variable: the
// kernel cannot pass a NUL byte in either.
func render(what string, t *tmpl.Template, data map[string]any) (string, error) {
	v, err := t.Render(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if strings.ContainsRune(v, 0) {
		return "", fmt.Errorf("%s: the rendered value holds a NUL byte", what)
	}
	return v, nil
}

// env is the command's whole environment: the few variables passed from
// the daemon, the event's, then the configured ones.
func (s *step) env(in actionapi.Input, data map[string]any) (map[string]string, error) {
	env := map[string]string{}
	for _, k := range passed {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	ev := in.Event
	for k, v := range map[string]string{
		"EVENT_ID":    ev.ID,
		"SOURCE":      ev.Source,
		"KIND":        ev.Kind,
		"DOMAIN":      ev.Domain,
		"APP":         ev.App,
		"STREAM":      ev.Stream,
		"URI":         ev.URI,
		"FORMAT":      ev.Format,
		"DURATION":    strconv.FormatFloat(ev.Duration, 'f', -1, 64),
		"EVENT":       ev.Event,
		"RULE":        in.Rule,
		"DELIVERY_ID": in.DeliveryID,
	} {
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("env: LIVEHOOK_%s: the value holds a NUL byte", k)
		}
		env["LIVEHOOK_"+k] = v
	}
	for k, t := range s.params.Env {
		if t == nil {
			delete(env, k)
			continue
		}
		v, err := render("env: "+k, t, data)
		if err != nil {
			return nil, err
		}
		env[k] = v
	}
	return env, nil
}

func (s *step) Do(ctx context.Context, p actionapi.Plan) actionapi.Result {
	r, ok := p.Payload.(*run)
	if !ok {
		return actionapi.Failed(actionapi.Permanent, errors.New("exec: plan was not made by this step"))
	}
	stdout, stderr := &subprocess.Head{Max: outputLimit}, &subprocess.Head{Max: outputLimit}
	ran, err := subprocess.Run(ctx, subprocess.Command{
		Path: r.command, Args: r.args, Dir: r.dir, Env: r.env, Stdin: r.stdin,
		Timeout: r.timeout, Stdout: stdout, Stderr: stderr,
	})
	res := classify(ctx, ran, err, r.timeout)
	parts := []string{res.Detail}
	if o := stderr.String(); o != "" {
		parts = append(parts, "stderr: "+o)
	}
	if o := stdout.String(); o != "" {
		parts = append(parts, "stdout: "+o)
	}
	res.Detail = s.i.secrets.Redact(strings.Join(parts, "; "))

	level := slog.LevelDebug
	if res.Outcome != actionapi.Delivered {
		level = slog.LevelInfo
	}
	s.i.logger.Log(ctx, level, "exec finished", "action", s.i.name, "event_id", r.eventID, "rule", r.rule,
		"command", s.i.secrets.Redact(r.command), "result", res.Outcome.String(),
		"stdout", s.i.secrets.Redact(stdout.String()), "stderr", s.i.secrets.Redact(stderr.String()))
	return res
}

// classify turns how the command ended into a result; Detail is the head
// line, the caller adds the output. Exit 0 counts however the run ended.
func classify(ctx context.Context, ran subprocess.Result, startErr error, timeout time.Duration) actionapi.Result {
	switch {
	case startErr != nil:
		return failed(startOutcome(startErr), fmt.Errorf("cannot start: %w", startErr))
	case ran.Code == 0:
		return actionapi.Result{Outcome: actionapi.Delivered, Detail: "exit 0"}
	case ran.Killed == subprocess.Cancelled:
		return failed(actionapi.Retryable, fmt.Errorf("stopped: %w", ctx.Err()))
	case ran.Killed == subprocess.Timeout:
		return actionapi.Result{Outcome: actionapi.Retryable, Detail: fmt.Sprintf("killed after %s", timeout),
			Err: fmt.Errorf("exec: killed after %s: %w", timeout, context.DeadlineExceeded)}
	case ran.Code == exTempFail:
		return failed(actionapi.Retryable, fmt.Errorf("%s (EX_TEMPFAIL: try again later)", ran.Exit))
	}
	return failed(actionapi.Permanent, errors.New(ran.Exit))
}

func failed(o actionapi.Outcome, err error) actionapi.Result {
	return actionapi.Result{Outcome: o, Detail: err.Error(), Err: fmt.Errorf("exec: %w", err)}
}

// startOutcome classifies a failure to start: a missing or unusable
// program stays missing, but a full process table may clear.
func startOutcome(err error) actionapi.Outcome {
	for _, transient := range []error{syscall.EAGAIN, syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE} {
		if errors.Is(err, transient) {
			return actionapi.Retryable
		}
	}
	return actionapi.Permanent
}

func validEnvName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	})
}
