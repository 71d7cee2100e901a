// Package action is the contract between the engine and action types. The
// engine knows no concrete action: each type lives under actions/ and
// registers itself with Register from init.
package actionapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/yamlconf"
)

// Type is one kind of action, the value of `type:` in a rules file.
type Type struct {
	Name string // value of `type:`
	Doc  string // one line for help output
	// Open builds an instance from its settings. It validates everything it
	// can and does no network I/O: `livehook check` calls it too.
	Open func(s Settings) (Instance, error)
	// Delivery is the type's default delivery policy; zero means Alerting.
	Delivery DeliveryPolicy
}

// DeliveryPolicy bounds how livehook keeps trying one delivery across time
// and restarts, on top of the quick retries inside one attempt. Users set it
// per instance under `delivery:`.
type DeliveryPolicy struct {
	MaxAttempts int           `yaml:"max_attempts"` // attempts in all before a dead letter
	MaxAge      time.Duration `yaml:"max_age"`      // give up this long after the event
	Concurrency int           `yaml:"concurrency"`  // deliveries of one instance at once
	Backoff     time.Duration `yaml:"backoff"`      // wait before the second attempt; doubles after
	MaxBackoff  time.Duration `yaml:"max_backoff"`  // longest wait between attempts
}

// Policies suited to chat alerts and webhooks (minutes), and to cloud jobs
// such as transcoding (hours).
var (
	Alerting = DeliveryPolicy{MaxAttempts: 10, MaxAge: 30 * time.Minute, Concurrency: 4, Backoff: 5 * time.Second, MaxBackoff: 5 * time.Minute}
	Jobs     = DeliveryPolicy{MaxAttempts: 30, MaxAge: 6 * time.Hour, Concurrency: 4, Backoff: 10 * time.Second, MaxBackoff: 30 * time.Minute}
)

// Over returns p with its zero fields taken from base.
func (p DeliveryPolicy) Over(base DeliveryPolicy) DeliveryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = base.MaxAttempts
	}
	if p.MaxAge <= 0 {
		p.MaxAge = base.MaxAge
	}
	if p.Concurrency <= 0 {
		p.Concurrency = base.Concurrency
	}
	if p.Backoff <= 0 {
		p.Backoff = base.Backoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = base.MaxBackoff
	}
	return p
}

// Instance is one configured action: an entry under `actions:` or an inline
// step. It owns per-instance state such as a rate limiter.
type Instance interface {
	// Step compiles one use of the instance, with the step's `with:`
	// parameters overriding the instance's defaults.
	Step(with Params) (Step, error)
	// Close releases the instance once no delivery uses it any more.
	Close() error
}

// Step is a compiled rule step.
type Step interface {
	// Plan renders exactly what would be sent for in, without I/O.
	Plan(in Input) (Plan, error)
	// Do sends a plan. HTTP retries have already happened inside it.
	Do(ctx context.Context, p Plan) Result
}

// Input is what a step renders from.
type Input struct {
	Event      *event.Event
	Rule       string
	DeliveryID string // stable across retries of the same (event, rule, step)
	Suppressed int    // matches a throttle held back since the last delivery
	// Temporal holds what a rule over time fired with (key, prev,
	// trigger, events, count, window, waited, late, dropped).
	Temporal map[string]any
}

// Data is the template data for in.
func (in Input) Data() map[string]any {
	extra := map[string]any{
		"suppressed":  in.Suppressed,
		"delivery_id": in.DeliveryID,
	}
	for _, k := range event.TemporalFields {
		extra[k] = nil
	}
	for k, v := range in.Temporal {
		extra[k] = v
	}
	return event.TemplateData(in.Event, extra)
}

// Plan is a rendered delivery. Everything but Payload is shown by
// `livehook test` and must already be free of secrets.
type Plan struct {
	Method string         `json:"method,omitempty"`
	Target string         `json:"target"`         // where it goes, secrets redacted
	Body   any            `json:"body,omitempty"` // what is sent, secrets redacted
	Info   map[string]any `json:"info,omitempty"` // other rendered values worth showing
	// Payload is the step's own rendering, read back by Do.
	Payload any `json:"-"`
}

// Outcome classifies a delivery attempt.
type Outcome int

const (
	Delivered Outcome = iota // the service accepted it
	Retryable                // try again later
	Permanent                // retrying cannot help
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Result is what a delivery attempt came to.
type Result struct {
	Outcome    Outcome
	Detail     string            // the service's own words, e.g. "errcode 310000: sign not match"
	IDs        map[string]string // identifiers the service returned: TaskId, RequestId, JobId
	RetryAfter time.Duration     // how long the service asked us to wait, if it did
	Err        error
	// Events are follow-up events the action reports (a plugin's job
	// finished, say); the engine feeds them back into the rules.
	Events []*event.Event
}

// Failed builds a failure result from err.
func Failed(o Outcome, err error) Result {
	return Result{Outcome: o, Detail: err.Error(), Err: err}
}

// Deps are the daemon's shared services, handed to every instance.
type Deps struct {
	Logger *slog.Logger
	HTTP   *HTTP
	Now    func() time.Time
	// Pacer keeps the send slots of chat services (see Pacing) for every
	// process sharing the store; nil paces each process alone.
	Pacer store.Pacer
}

// WithDefaults fills in what a caller left out (`livehook check` needs no
// clock, a test no log): a logger that discards, a connection pool of its
// own, the wall clock. Instances get their Deps complete.
func (d Deps) WithDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.HTTP == nil {
		d.HTTP = NewHTTP(nil)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Settings are one instance's settings as written in the rules file.
type Settings struct {
	Name string     // instance name: the key under `actions:`, or rule/step[i] inline
	Type string     // its type
	File string     // file it was read from
	Node *yaml.Node // its mapping, without `type`
	Deps Deps       // complete (see WithDefaults)
	// Secrets learns every secret.Secret decoded from the settings, so the
	// engine can scrub them from any text it shows.
	Secrets *secret.Redactor
}

// Decode decodes the settings strictly into v, with file:line:col errors.
func (s Settings) Decode(v any) error {
	err := yamlconf.Decode(s.File, s.Node, v)
	collectSecrets(reflect.ValueOf(v), s.Secrets)
	return err
}

// Params is a step's `with:` mapping; Node is nil when the step has none.
type Params struct {
	File    string
	Node    *yaml.Node
	Secrets *secret.Redactor
}

// Decode decodes the parameters onto v, which already holds the instance's
// defaults. Each key present in `with:` replaces that parameter whole; the
// rest keep their defaults. v must be a pointer to a struct.
//
// The keys are decoded into a fresh value and then copied over, because
// yaml.v3 decodes into an existing pointer in place: decoding onto a copy
// of the defaults would rewrite the defaults that other steps share.
func (p Params) Decode(v any) error {
	if p.Node == nil {
		return nil
	}
	dst := reflect.ValueOf(v).Elem()
	fresh := reflect.New(dst.Type())
	err := yamlconf.Decode(p.File, p.Node, fresh.Interface())
	collectSecrets(fresh, p.Secrets)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(p.Node.Content); i += 2 {
		if idx := yamlconf.FieldIndex(dst.Type(), p.Node.Content[i].Value); idx != nil {
			dst.FieldByIndex(idx).Set(fresh.Elem().FieldByIndex(idx))
		}
	}
	return nil
}

var secretType = reflect.TypeOf(secret.Secret{})

func collectSecrets(v reflect.Value, r *secret.Redactor) {
	if r == nil || !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			collectSecrets(v.Elem(), r)
		}
	case reflect.Struct:
		if v.Type() == secretType {
			r.Add(v.Interface().(secret.Secret).Reveal())
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				collectSecrets(v.Field(i), r)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			collectSecrets(v.Index(i), r)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			collectSecrets(v.MapIndex(k), r)
		}
	}
}

// Registry maps type names to types.
type Registry struct {
	mu    sync.RWMutex
	types map[string]Type
}

// NewRegistry returns an empty registry, for tests and for layering.
func NewRegistry() *Registry { return &Registry{types: map[string]Type{}} }

var defaultRegistry = NewRegistry()

// Default is the registry that built-in types register into.
func Default() *Registry { return defaultRegistry }

// Register adds t to the default registry. It is meant for init and panics
// on an empty or duplicate name: a silent overwrite would hide a bug.
func Register(t Type) {
	if err := defaultRegistry.Add(t); err != nil {
		panic(err)
	}
}

// Add adds t, refusing an empty or duplicate name.
func (r *Registry) Add(t Type) error {
	if t.Name == "" || t.Open == nil {
		return fmt.Errorf("register action type %q: name and Open are required", t.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.types[t.Name]; dup {
		return fmt.Errorf("register action type %q: already registered", t.Name)
	}
	r.types[t.Name] = t
	return nil
}

// Lookup finds a type by name.
func (r *Registry) Lookup(name string) (Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[name]
	return t, ok
}

// Names lists the registered type names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Types lists the registered types, sorted by name.
func (r *Registry) Types() []Type {
	var out []Type
	for _, n := range r.Names() {
		t, _ := r.Lookup(n)
		out = append(out, t)
	}
	return out
}

// With returns a new registry holding r's types plus extra. A name that is
// already taken is an error: an added type may not shadow a built-in.
func (r *Registry) With(extra ...Type) (*Registry, error) {
	out := NewRegistry()
	for _, t := range r.Types() {
		out.types[t.Name] = t
	}
	for _, t := range extra {
		if err := out.Add(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Scrubbed returns r with its texts passed through hide and its error
// replaced by a plain one prefixed with who: a wrapped *url.Error would keep
// the whole URL, tokens and all, reachable through errors.Unwrap.
func (r Result) Scrubbed(who string, hide func(string) string) Result {
	r.Detail = hide(r.Detail)
	if r.Err != nil {
		r.Err = errors.New(who + ": " + hide(r.Err.Error()))
	}
	return r
}
