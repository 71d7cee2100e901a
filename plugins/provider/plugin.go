package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/yamlconf"
	"github.com/livehook/livehook/plugins/protocol"
)

// Type is the action type that runs p: to the engine it is like any
// built-in type.
func (p *Plugin) Type() actionapi.Type {
	doc := p.Doc
	if doc == "" {
		doc = "plugin " + p.Name
	}
	return actionapi.Type{Name: p.Name, Doc: doc + " (plugin)", Open: p.open, Delivery: p.Delivery}
}

type instance struct {
	p        *Plugin
	name     string
	timeout  time.Duration
	settings map[string]any // rendered; secrets still secret.Secret
	defaults map[string]any // decoded parameters
	logger   *slog.Logger
	secrets  *secret.Redactor
}

func (p *Plugin) open(s actionapi.Settings) (actionapi.Instance, error) {
	var (
		l        yamlconf.List
		timeout  = p.Timeout
		settings = defaults(p.Settings, s.Secrets)
		params   = defaults(p.Params, s.Secrets)
		given    = map[string]bool{} // a key with a bad value is reported once, not also as missing
	)
	if s.Node != nil {
		yamlconf.ForEachKey(s.File, s.Node, &l, func(k, v *yaml.Node) {
			f, isSetting := p.field(k.Value)
			given[k.Value] = !isNull(v)
			switch {
			case k.Value == "timeout":
				if d, ok := decodeScalar(s.File, "timeout", "duration", v, &l).(time.Duration); ok && d > 0 {
					timeout = d
				}
			case f == nil:
				l.At(s.File, k, "unknown key %q (want one of %s)", k.Value, strings.Join(p.keys(true), ", "))
			case isSetting:
				set(settings, f, s.File, v, &l, s.Secrets)
			default:
				set(params, f, s.File, v, &l, s.Secrets)
			}
		})
	}
	for _, f := range p.Settings {
		if _, ok := settings[f.Name]; !ok && f.Required && !given[f.Name] {
			l.At(s.File, s.Node, "%s: %s is required", s.Name, f.Name)
		}
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	rendered, err := renderMap(settings, nil)
	if err != nil { // settings hold no templates, so this is a bug
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	return &instance{p: p, name: s.Name, timeout: timeout, settings: rendered, defaults: params,
		logger: s.Deps.Logger, secrets: s.Secrets}, nil
}

// defaults returns the manifest's defaults of fields; null in the rules
// removes one.
func defaults(fields []Field, secrets *secret.Redactor) map[string]any {
	m := map[string]any{}
	for _, f := range fields {
		if f.def == nil {
			continue
		}
		m[f.Name] = f.def
		if sec, ok := f.def.(secret.Secret); ok && secrets != nil {
			secrets.Add(sec.Reveal())
		}
	}
	return m
}

// field finds the field called name and says whether it is a setting.
func (p *Plugin) field(name string) (*Field, bool) {
	for i := range p.Settings {
		if p.Settings[i].Name == name {
			return &p.Settings[i], true
		}
	}
	for i := range p.Params {
		if p.Params[i].Name == name {
			return &p.Params[i], false
		}
	}
	return nil, false
}

// keys lists the keys an instance (or, without the instance's own keys, a
// step's `with:`) accepts, sorted.
func (p *Plugin) keys(onInstance bool) []string {
	var out []string
	for _, f := range p.Params {
		out = append(out, f.Name)
	}
	if onInstance {
		for _, f := range p.Settings {
			out = append(out, f.Name)
		}
		out = append(out, "timeout")
	}
	sort.Strings(out)
	return out
}

// set decodes v as f into m; null removes the value (and so a default).
func set(m map[string]any, f *Field, file string, v *yaml.Node, l *yamlconf.List, secrets *secret.Redactor) {
	if isNull(v) {
		delete(m, f.Name)
		return
	}
	if d := f.decode(file, v, l, secrets); d != nil {
		m[f.Name] = d
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (i *instance) Step(with actionapi.Params) (actionapi.Step, error) {
	params := maps.Clone(i.defaults)
	var l yamlconf.List
	given := map[string]bool{}
	if with.Node != nil {
		yamlconf.ForEachKey(with.File, with.Node, &l, func(k, v *yaml.Node) {
			given[k.Value] = !isNull(v)
			switch f, isSetting := i.p.field(k.Value); {
			case f == nil:
				l.At(with.File, k, "unknown key %q (want one of %s)", k.Value, strings.Join(i.p.keys(false), ", "))
			case isSetting:
				l.At(with.File, k, "%q is a setting: set it on the action, not under with:", k.Value)
			default:
				set(params, f, with.File, v, &l, with.Secrets)
			}
		})
	}
	for _, f := range i.p.Params {
		if _, ok := params[f.Name]; ok || !f.Required || given[f.Name] {
			continue
		}
		if with.Node == nil {
			// The loader reports a plain error at the step's position.
			return nil, fmt.Errorf("%s: %s is required (set it on the action or in the step's with:)", i.name, f.Name)
		}
		l.At(with.File, with.Node, "%s: %s is required", i.name, f.Name)
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	return &step{i: i, params: params}, nil
}

func (i *instance) Close() error { return nil }

type step struct {
	i      *instance
	params map[string]any
}

// payload is a rendered delivery, read back by Do.
type payload struct {
	req     protocol.Request // without timeout_ms, which is the instance's
	eventID string
}

func (s *step) Plan(in actionapi.Input) (actionapi.Plan, error) {
	params, err := renderMap(s.params, in.Data())
	if err != nil {
		return actionapi.Plan{}, err
	}
	req := protocol.Request{Protocol: protocol.Version, Plugin: s.i.p.Name, Action: s.i.name,
		Rule: in.Rule, DeliveryID: in.DeliveryID}
	if req.Settings, err = marshal(s.i.settings); err == nil {
		if req.Params, err = marshal(params); err == nil {
			req.Event, err = event.AppendJSON(nil, in.Event)
		}
	}
	if err != nil {
		return actionapi.Plan{}, fmt.Errorf("encode request: %w", err)
	}
	return actionapi.Plan{
		Target:  s.i.p.program,
		Body:    map[string]any{"settings": s.i.settings, "params": params},
		Info:    map[string]any{"timeout": s.i.timeout.String()},
		Payload: payload{req: req, eventID: in.Event.ID},
	}, nil
}

func renderMap(m map[string]any, data map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		r, err := render(v, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = r
	}
	return out, nil
}

// Do runs the plugin once. Retries are the engine's, under the instance's
// delivery policy, with the same delivery id.
func (s *step) Do(ctx context.Context, p actionapi.Plan) actionapi.Result {
	pl, ok := p.Payload.(payload)
	if !ok {
		return actionapi.Failed(actionapi.Permanent, errors.New("plan was not made by a plugin step"))
	}
	i := s.i
	req := pl.req
	req.TimeoutMS = i.timeout.Milliseconds()
	b, err := json.Marshal(req)
	if err != nil {
		return actionapi.Failed(actionapi.Permanent, fmt.Errorf("encode request: %w", err))
	}
	r := i.p.exec(ctx, b, i.timeout)
	res := i.redact(r.result(i.timeout, i.secrets.Redact))
	log := i.logger.With("plugin", i.p.Name, "action", i.name, "rule", req.Rule,
		"event_id", pl.eventID, "delivery_id", req.DeliveryID)
	if r.stderr != "" {
		level := slog.LevelWarn
		if res.Outcome == actionapi.Delivered {
			level = slog.LevelInfo
		}
		log.Log(ctx, level, "plugin stderr", "stderr", i.secrets.Redact(r.stderr))
	}
	if r.answered() {
		res.Events = i.followUps(log, r.resp.Events)
	}
	return res
}

// redact removes every known secret from what the plugin said.
func (i *instance) redact(r actionapi.Result) actionapi.Result {
	r.Detail = i.secrets.Redact(r.Detail)
	for k, v := range r.IDs {
		r.IDs[k] = i.secrets.Redact(v)
	}
	if r.Err != nil {
		r.Err = errors.New(i.secrets.Redact(r.Err.Error()))
	}
	return r
}

// followUps decodes a plugin's follow-up events. One that does not decode
// is logged and dropped: the delivery's own outcome stands.
func (i *instance) followUps(log *slog.Logger, raws []json.RawMessage) []*event.Event {
	var out []*event.Event
	for n, raw := range raws {
		ev, err := event.DecodeGeneric("plugin."+i.p.Name, raw)
		if err != nil {
			log.Warn("plugin follow-up event dropped", "index", n, "err", err)
			continue
		}
		out = append(out, ev)
	}
	return out
}
