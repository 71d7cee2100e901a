package actionapi_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/engine/yamlconf"
)

type nopInstance struct{}

func (nopInstance) Step(actionapi.Params) (actionapi.Step, error) { return nil, nil }
func (nopInstance) Close() error                                  { return nil }

func typ(name string) actionapi.Type {
	return actionapi.Type{Name: name, Open: func(actionapi.Settings) (actionapi.Instance, error) { return nopInstance{}, nil }}
}

func TestRegistryAdd(t *testing.T) {
	tests := []struct {
		name string
		t    actionapi.Type
		want string
	}{
		{"empty name", actionapi.Type{Open: typ("x").Open}, `register action type "": name and Open are required`},
		{"no Open", actionapi.Type{Name: "x"}, `register action type "x": name and Open are required`},
		{"duplicate", typ("log"), `register action type "log": already registered`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := actionapi.NewRegistry()
			if err := r.Add(typ("log")); err != nil {
				t.Fatal(err)
			}
			err := r.Add(tt.t)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Add error = %v, want %q", err, tt.want)
			}
			if !slices.Equal(r.Names(), []string{"log"}) {
				t.Errorf("names after a refused Add = %v", r.Names())
			}
		})
	}
}

func TestRegistryLookupAndNames(t *testing.T) {
	r := actionapi.NewRegistry()
	for _, n := range []string{"webhook", "dingtalk", "log"} {
		if err := r.Add(typ(n)); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Names(); !slices.Equal(got, []string{"dingtalk", "log", "webhook"}) {
		t.Errorf("Names = %v, want sorted", got)
	}
	var names []string
	for _, ty := range r.Types() {
		names = append(names, ty.Name)
	}
	if !slices.Equal(names, []string{"dingtalk", "log", "webhook"}) {
		t.Errorf("Types = %v", names)
	}
	if ty, ok := r.Lookup("log"); !ok || ty.Name != "log" {
		t.Errorf("Lookup(log) = %v, %v", ty.Name, ok)
	}
	if _, ok := r.Lookup("slack"); ok {
		t.Error("Lookup(slack) found a type that was never added")
	}
}

func TestRegistryWith(t *testing.T) {
	base := actionapi.NewRegistry()
	if err := base.Add(typ("log")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		extra   []actionapi.Type
		want    []string
		wantErr string
	}{
		{"adds", []actionapi.Type{typ("probe"), typ("fake")}, []string{"fake", "log", "probe"}, ""},
		{"nothing", nil, []string{"log"}, ""},
		{"may not shadow a built-in", []actionapi.Type{typ("log")}, nil, "already registered"},
		{"may not add a name twice", []actionapi.Type{typ("a"), typ("a")}, nil, "already registered"},
		{"may not add an empty name", []actionapi.Type{{}}, nil, "name and Open are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := base.With(tt.extra...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || r != nil {
					t.Errorf("With = %v, %v; want error %q", r, err, tt.wantErr)
				}
			} else if err != nil || !slices.Equal(r.Names(), tt.want) {
				t.Errorf("With = %v, %v; want %v", r, err, tt.want)
			}
			if !slices.Equal(base.Names(), []string{"log"}) {
				t.Errorf("With changed the base registry: %v", base.Names())
			}
		})
	}
}

func TestRegisterPanicsOnBadType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Register of a nameless type did not panic")
		}
	}()
	actionapi.Register(actionapi.Type{})
}

type at struct {
	Mobiles []string `yaml:"mobiles"`
	All     bool     `yaml:"all"`
}

type Titled struct {
	Title *tmpl.Template `yaml:"title"`
}

type params struct {
	Message *tmpl.Template `yaml:"message"`
	Tags    []string       `yaml:"tags"`
	At      at             `yaml:"at"`
	Titled  `yaml:",inline"`
	Token   secret.Secret `yaml:"token"`
}

func defaults() params {
	return params{
		Message: tmpl.MustParse("default {{ .stream }}"),
		Tags:    []string{"live"},
		At:      at{Mobiles: []string{"138"}, All: false},
		Titled:  Titled{Title: tmpl.MustParse("T")},
	}
}

func withNode(t *testing.T, src string) *yaml.Node {
	t.Helper()
	if src == "" {
		return nil
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func render(t *testing.T, tp *tmpl.Template) string {
	t.Helper()
	out, err := tp.Render(event.TemplateData(&event.Event{Stream: "room42"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParamsDecode(t *testing.T) {
	tests := []struct {
		name    string
		with    string
		message string
		tags    []string
		at      at
		title   string
	}{
		{name: "no with", message: "default room42", tags: []string{"live"}, at: at{Mobiles: []string{"138"}}, title: "T"},
		{name: "one key", with: "message: \"hi {{ .stream }}\"\n", message: "hi room42", tags: []string{"live"}, at: at{Mobiles: []string{"138"}}, title: "T"},
		{name: "a list is replaced, not appended to", with: "tags: [a, b]\n", message: "default room42", tags: []string{"a", "b"}, at: at{Mobiles: []string{"138"}}, title: "T"},
		{name: "a nested mapping is replaced whole", with: "at: {all: true}\n", message: "default room42", tags: []string{"live"}, at: at{All: true}, title: "T"},
		{name: "an inline field", with: "title: \"new {{ .stream }}\"\n", message: "default room42", tags: []string{"live"}, at: at{Mobiles: []string{"138"}}, title: "new room42"},
		{name: "an empty list clears", with: "tags: []\n", message: "default room42", tags: []string{}, at: at{Mobiles: []string{"138"}}, title: "T"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := defaults()
			if err := (actionapi.Params{File: "f.yaml", Node: withNode(t, tt.with)}).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if got := render(t, p.Message); got != tt.message {
				t.Errorf("message = %q, want %q", got, tt.message)
			}
			if !slices.Equal(p.Tags, tt.tags) || (p.Tags == nil) != (tt.tags == nil) {
				t.Errorf("tags = %#v, want %#v", p.Tags, tt.tags)
			}
			if !slices.Equal(p.At.Mobiles, tt.at.Mobiles) || p.At.All != tt.at.All {
				t.Errorf("at = %+v, want %+v", p.At, tt.at)
			}
			if got := render(t, p.Title); got != tt.title {
				t.Errorf("title = %q, want %q", got, tt.title)
			}
		})
	}
}

// Two steps start from one shared set of defaults, as every step of an
// instance does. Overriding a field in one must not reach the other or the
// defaults, even for fields that are pointers.
func TestParamsDecodeLeavesDefaultsAlone(t *testing.T) {
	shared := defaults()
	msg, title := shared.Message, shared.Title

	a := shared
	if err := (actionapi.Params{Node: withNode(t, "message: \"A {{ .stream }}\"\ntitle: TA\ntags: [x]\nat: {mobiles: [\"1\"]}\n")}).Decode(&a); err != nil {
		t.Fatal(err)
	}
	b := shared
	if err := (actionapi.Params{Node: withNode(t, "message: \"B {{ .stream }}\"\n")}).Decode(&b); err != nil {
		t.Fatal(err)
	}
	if got := render(t, a.Message); got != "A room42" {
		t.Errorf("step A message = %q", got)
	}
	if got := render(t, b.Message); got != "B room42" {
		t.Errorf("step B message = %q", got)
	}
	if got := render(t, b.Title); got != "T" {
		t.Errorf("step B title = %q, want the default", got)
	}
	if shared.Message != msg || shared.Title != title || render(t, msg) != "default room42" || render(t, title) != "T" {
		t.Errorf("the defaults changed: message %q title %q", render(t, shared.Message), render(t, shared.Title))
	}
	if !slices.Equal(shared.Tags, []string{"live"}) || !slices.Equal(shared.At.Mobiles, []string{"138"}) {
		t.Errorf("the defaults' slices changed: %v %v", shared.Tags, shared.At.Mobiles)
	}
	if !slices.Equal(b.Tags, []string{"live"}) {
		t.Errorf("step B tags = %v, want the default", b.Tags)
	}
}

func TestParamsDecodeErrors(t *testing.T) {
	tests := []struct {
		name      string
		with      string
		line, col int
		want      string
	}{
		{"unknown key", "message: hi\nmesage: typo\n", 2, 1, `unknown key "mesage" (want one of at, message, tags, title, token)`},
		{"bad template", "message: \"{{ .stream \"\n", 1, 10, "unclosed action"},
		{"unknown template field", "title: \"{{ .straem }}\"\n", 1, 8, `unknown field "straem"`},
		{"type error", "tags: yes\n", 1, 1, "cannot unmarshal"},
		{"nested unknown key", "at: {mobile: [1]}\n", 1, 6, `unknown key "mobile"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := defaults()
			before := render(t, p.Message)
			err := (actionapi.Params{File: "f.yaml", Node: withNode(t, tt.with)}).Decode(&p)
			ds := yamlconf.Diagnostics(err)
			if len(ds) != 1 {
				t.Fatalf("error %v, want one diagnostic", err)
			}
			if d := ds[0]; d.File != "f.yaml" || d.Line != tt.line || d.Col != tt.col || !strings.Contains(d.Msg, tt.want) {
				t.Errorf("diagnostic %s, want f.yaml:%d:%d containing %q", d, tt.line, tt.col, tt.want)
			}
			if render(t, p.Message) != before {
				t.Error("a failed Decode changed the parameters")
			}
		})
	}
}

func TestDecodeCollectsSecrets(t *testing.T) {
	type settings struct {
		URL   secret.Secret            `yaml:"url"`
		Keys  []secret.Secret          `yaml:"keys"`
		ByEnv map[string]secret.Secret `yaml:"by_env"`
		Ptr   *secret.Secret           `yaml:"ptr"`
		Plain string                   `yaml:"plain"`
	}
	red := &secret.Redactor{}
	s := actionapi.Settings{Name: "x", File: "f.yaml", Secrets: red,
		Node: withNode(t, "url: https://h/?token=TOKEN1\nkeys: [KEY-TWO]\nby_env: {prod: KEY-THREE}\nptr: KEY-FOUR\nplain: not-secret\n")}
	var c settings
	if err := s.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.URL.Reveal() != "https://h/?token=TOKEN1" {
		t.Errorf("url = %q", c.URL.Reveal())
	}
	got := red.Redact("https://h/?token=TOKEN1 KEY-TWO KEY-THREE KEY-FOUR not-secret")
	if got != "**** **** **** **** not-secret" {
		t.Errorf("Redact = %q", got)
	}

	// A secret in a step's with: is known too, and so is one in settings
	// that fail to decode (the error text may quote them).
	red2 := &secret.Redactor{}
	p := defaults()
	if err := (actionapi.Params{Node: withNode(t, "token: SEC-PARAM\n"), Secrets: red2}).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if p.Token.Reveal() != "SEC-PARAM" || red2.Redact("SEC-PARAM") != "****" {
		t.Errorf("param secret: %q, redacted %q", p.Token.Reveal(), red2.Redact("SEC-PARAM"))
	}
	red3 := &secret.Redactor{}
	var c3 settings
	err := actionapi.Settings{File: "f.yaml", Secrets: red3, Node: withNode(t, "url: SEC-BROKEN\nbogus: 1\n")}.Decode(&c3)
	if err == nil || red3.Redact("SEC-BROKEN") != "****" {
		t.Errorf("err %v; secret of a failed decode redacted as %q", err, red3.Redact("SEC-BROKEN"))
	}
}

func TestSettingsDecodeIsStrict(t *testing.T) {
	var c struct {
		actionapi.HTTPOptions `yaml:",inline"`
		URL                   string `yaml:"url"`
	}
	s := actionapi.Settings{File: "f.yaml", Node: withNode(t, "url: u\ntimeout: 5s\nretry:\n  attempts: 5\n  min_backof: 1s\n")}
	err := s.Decode(&c)
	ds := yamlconf.Diagnostics(err)
	if len(ds) != 1 || ds[0].Line != 5 || ds[0].Col != 3 || !strings.Contains(ds[0].Msg, `unknown key "min_backof" (want one of attempts, max_backoff, min_backoff)`) {
		t.Fatalf("error = %v", err)
	}
	s.Node = withNode(t, "url: u\ntimeout: 5s\nretry: {attempts: 5, min_backoff: 1s, max_backoff: 30s}\n")
	if err := s.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := actionapi.HTTPOptions{Timeout: 5 * time.Second, Retry: actionapi.RetryPolicy{Attempts: 5, MinBackoff: time.Second, MaxBackoff: 30 * time.Second}}
	if c.HTTPOptions != want || c.URL != "u" {
		t.Errorf("decoded %+v", c)
	}
}

func TestInputData(t *testing.T) {
	in := actionapi.Input{Event: &event.Event{Stream: "s"}, Rule: "r", DeliveryID: "d-1", Suppressed: 3}
	d := in.Data()
	if d["stream"] != "s" || d["delivery_id"] != "d-1" || d["suppressed"] != 3 {
		t.Errorf("Data = %v", d)
	}
	for _, f := range append(slices.Clone(event.Fields), tmpl.Extra...) {
		if _, ok := d[f]; !ok {
			t.Errorf("Data lacks %q, which templates may use", f)
		}
	}
}

func TestOutcomeAndFailed(t *testing.T) {
	for o, want := range map[actionapi.Outcome]string{actionapi.Delivered: "delivered", actionapi.Retryable: "retryable", actionapi.Permanent: "permanent", 9: "outcome(9)"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), want)
		}
	}
	err := errors.New("boom")
	if r := actionapi.Failed(actionapi.Permanent, err); r.Outcome != actionapi.Permanent || r.Detail != "boom" || r.Err != err {
		t.Errorf("Failed = %+v", r)
	}
}

func TestResultScrubbed(t *testing.T) {
	var red secret.Redactor
	red.Add("TOKEN123")
	uerr := &url.Error{Op: "Post", URL: "https://hooks.example/x?token=TOKEN123", Err: context.DeadlineExceeded}
	r := actionapi.Failed(actionapi.Retryable, uerr).Scrubbed("webhook", red.Redact)
	if strings.Contains(r.Detail, "TOKEN123") || strings.Contains(r.Err.Error(), "TOKEN123") {
		t.Errorf("secret survived: %q / %q", r.Detail, r.Err)
	}
	if !strings.HasPrefix(r.Err.Error(), "webhook: ") {
		t.Errorf("err = %q, want the who prefix", r.Err)
	}
	var ue *url.Error
	if errors.As(r.Err, &ue) {
		t.Error("the original *url.Error (with the full URL) is still reachable")
	}
	if r.Outcome != actionapi.Retryable {
		t.Errorf("outcome changed to %v", r.Outcome)
	}
	ok := actionapi.Result{Outcome: actionapi.Delivered, Detail: "200 OK"}.Scrubbed("x", red.Redact)
	if ok.Err != nil || ok.Detail != "200 OK" {
		t.Errorf("scrubbed success = %+v", ok)
	}
}
