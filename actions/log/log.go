// Package logaction is the `log` action: it writes a rendered message to the
// daemon's log. It needs no credentials, so it is what the example rules use.
package logaction

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/tmpl"
)

func init() {
	actionapi.Register(actionapi.Type{
		Name: "log",
		Doc:  "write a message to livehook's own log",
		Open: open,
	})
}

// Config is a log instance's settings.
type Config struct {
	Level  string `yaml:"level"` // debug, info (default), warn or error
	Params `yaml:",inline"`
}

// Params can be set on the instance and overridden per step.
type Params struct {
	// Message is a template; default: a one-line summary of the event.
	Message *tmpl.Template `yaml:"message"`
}

var defaultMessage = tmpl.MustParse(`{{ .source }} {{ .kind }} {{ .domain }}/{{ .app }}/{{ .stream }}{{ with .event }} event={{ . }}{{ end }}{{ with .uri }} uri={{ . }}{{ end }}`)

type instance struct {
	name     string
	level    slog.Level
	defaults Params
	logger   *slog.Logger
}

func open(s actionapi.Settings) (actionapi.Instance, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	var level slog.Level
	if c.Level != "" {
		if err := level.UnmarshalText([]byte(c.Level)); err != nil {
			return nil, fmt.Errorf("%s: level %q: want debug, info, warn or error", s.Name, c.Level)
		}
	}
	if c.Message == nil {
		c.Message = defaultMessage
	}
	return &instance{name: s.Name, level: level, defaults: c.Params, logger: s.Deps.Logger}, nil
}

func (i *instance) Step(with actionapi.Params) (actionapi.Step, error) {
	p := i.defaults
	if err := with.Decode(&p); err != nil {
		return nil, err
	}
	return &step{i: i, params: p}, nil
}

func (i *instance) Close() error { return nil }

type step struct {
	i      *instance
	params Params
}

func (s *step) Plan(in actionapi.Input) (actionapi.Plan, error) {
	msg, err := s.params.Message.Render(in.Data())
	if err != nil {
		return actionapi.Plan{}, fmt.Errorf("message: %w", err)
	}
	return actionapi.Plan{
		Target:  "log",
		Body:    msg,
		Info:    map[string]any{"level": s.i.level.String()},
		Payload: line{msg: msg, rule: in.Rule, eventID: in.Event.ID},
	}, nil
}

type line struct{ msg, rule, eventID string }

func (s *step) Do(ctx context.Context, p actionapi.Plan) actionapi.Result {
	l := p.Payload.(line)
	s.i.logger.Log(ctx, s.i.level, l.msg, "action", s.i.name, "rule", l.rule, "event_id", l.eventID)
	return actionapi.Result{Outcome: actionapi.Delivered}
}
