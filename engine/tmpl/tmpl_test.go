package tmpl_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/engine/yamlconf"
)

// sample is the template data of a recording-error event with a detailed
// payload, as a step renders it.
func sample() map[string]any {
	ev := &event.Event{
		ID: "01HZ", Source: event.SourceRecord, Kind: event.KindStatus,
		Domain: "play.example.com", App: "live", Stream: "room42",
		URI: "record/live/room42/a.flv", Format: "flv", Duration: 69.403,
		StartTime: 1488985786, StopTime: 1488985840, Event: "record_error",
		PushArgs:   map[string]string{"callback_orderid": "VIP-7"},
		ReceivedAt: time.Date(2024, 5, 1, 12, 0, 3, 0, time.UTC),
		Payload: map[string]any{
			"error_info": map[string]any{"code": "BucketNotFound", "message": "Bucket not found"},
			"items":      []any{map[string]any{"name": "a"}, map[string]any{"name": "b"}},
			"n":          int64(3),
		},
	}
	return event.TemplateData(ev, map[string]any{"suppressed": 4, "delivery_id": "dlv-1"})
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unclosed action", "{{ .stream ", "template: 1: unclosed action"},
		{"unexpected end", "{{ end }}", "unexpected {{end}}"},
		{"unclosed if", "{{ if .stream }}x", "unexpected EOF"},
		{"unknown function", "{{ nofunc .stream }}", `function "nofunc" not defined`},
		{"error on a later line", "a\nb\n{{ .stream", "template: 3: unclosed action"},
		{"misspelt field", "{{ .duraton }}", `unknown field "duraton" (events have id, source,`},
		{"misspelt field after a good one", "{{ .stream }} {{ .strem }}", `unknown field "strem"`},
		{"misspelt field in a pipeline", "{{ .stream | printf \"%s-%v\" .domian }}", `unknown field "domian"`},
		{"misspelt field in an if", "{{ if .evnt }}x{{ end }}", `unknown field "evnt"`},
		{"misspelt field in an else", "{{ if .event }}x{{ else }}{{ .evnt }}{{ end }}", `unknown field "evnt"`},
		{"misspelt field in a range pipe", "{{ range .itmes }}{{ end }}", `unknown field "itmes"`},
		{"misspelt field in a with's else", "{{ with .payload }}{{ .x }}{{ else }}{{ .nope }}{{ end }}", `unknown field "nope"`},
		{"dollar field at the top", "{{ $.nope }}", `unknown field "nope"`},
		{"dollar field inside range", "{{ range .payload.items }}{{ $.strem }}{{ end }}", `unknown field "strem"`},
		{"dollar field inside with", "{{ with .payload }}{{ $.nope.deeper }}{{ end }}", `unknown field "nope"`},
		{"misspelt field in a variable", "{{ $d := .duraton }}{{ $d }}", `unknown field "duraton"`},
		{"misspelt field in parentheses", "{{ printf \"%v\" (.duraton) }}", `unknown field "duraton"`},
		// env and expandenv would print the daemon's secrets.
		{"env is not available", `{{ env "DINGTALK_SECRET" }}`, `function "env" not defined`},
		{"expandenv is not available", `{{ expandenv "$DINGTALK_SECRET" }}`, `function "expandenv" not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := tmpl.Parse(tt.src)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want an error containing %q", tt.src, tt.want)
			}
			if tp != nil {
				t.Error("Parse returned a template with its error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "template: :") {
				t.Errorf("error %q keeps text/template's empty name", err)
			}
		})
	}
}

func TestParseAndRender(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"plain text", "hello", "hello"},
		{"empty", "", ""},
		{"every top-level name", "{{ .id }} {{ .source }} {{ .kind }} {{ .domain }} {{ .app }} {{ .stream }} {{ .uri }} {{ .format }} {{ .duration }} {{ .start_time }} {{ .stop_time }} {{ .event }} {{ .suppressed }} {{ .delivery_id }}",
			"01HZ aliyun_live_record status play.example.com live room42 record/live/room42/a.flv flv 69.403 1488985786 1488985840 record_error 4 dlv-1"},
		{"range moves the dot", "{{ range .payload.items }}{{ .name }};{{ end }}", "a;b;"},
		{"with moves the dot", "{{ with .payload }}{{ .anything }}|{{ .n }}{{ end }}", "<no value>|3"},
		{"with over a missing field", "{{ with .payload.nope }}x{{ else }}none{{ end }}", "none"},
		{"dollar reaches the top inside range", "{{ range .payload.items }}{{ $.stream }}/{{ .name }} {{ end }}", "room42/a room42/b "},
		{"nested payload field", "{{ .payload.error_info.code }}: {{ .payload.error_info.message }}", "BucketNotFound: Bucket not found"},
		{"missing deep field renders a gap", "{{ .payload.missing.deeper }}", "<no value>"},
		{"push_args", "{{ .push_args.callback_orderid }}", "VIP-7"},
		{"sprig arithmetic", "{{ sub .stop_time .start_time }}s", "54s"},
		{"sprig string functions", `{{ .event | replace "record_" "" | upper }}`, "ERROR"},
		{"sprig default", `{{ .payload.nope | default "n/a" }}`, "n/a"},
		{"sprig date", `{{ .received_at | date "2006-01-02 15:04" }}`, "2024-05-01 12:00"},
		{"sprig toJson", `{{ toJson .push_args }}`, `{"callback_orderid":"VIP-7"}`},
		{"printf", `{{ printf "%.0f" .duration }}`, "69"},
		{"time method", `{{ .received_at.Unix }}`, "1714564803"},
		{"variables", `{{ $s := .stream }}{{ range .payload.items }}{{ $s }}{{ end }}`, "room42room42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := tmpl.Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tp.Source() != tt.src {
				t.Errorf("Source() = %q, want %q", tp.Source(), tt.src)
			}
			got, err := tp.Render(sample())
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"index out of range", "{{ index .payload.items 5 }}", "index out of range"},
		{"fail", `{{ fail "no bucket" }}`, "no bucket"},
		{"field of a string", "{{ .stream.x }}", "can't evaluate field x"},
		{"division by zero", "{{ div 1 0 }}", "divide by zero"},
		{"undefined template", `{{ template "x" }}`, `template "x" not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := tmpl.Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := tp.Render(sample())
			if err == nil {
				t.Fatalf("Render = %q, want an error", out)
			}
			if !strings.HasPrefix(err.Error(), "render template: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want render template: ...%s", err, tt.want)
			}
			if out != "" {
				t.Errorf("partial output %q returned with the error", out)
			}
		})
	}
}

func TestNilAndZero(t *testing.T) {
	var nilT *tmpl.Template
	if !nilT.IsZero() || nilT.Source() != "" {
		t.Error("nil template: want IsZero and empty source")
	}
	if out, err := nilT.Render(sample()); out != "" || err != nil {
		t.Errorf("nil Render = %q, %v", out, err)
	}
	// A Template field that the YAML did not set is the zero value.
	var unset tmpl.Template
	if !unset.IsZero() {
		t.Error("zero Template: want IsZero")
	}
	if out, err := unset.Render(sample()); out != "" || err != nil {
		t.Errorf("zero Render = %q, %v", out, err)
	}
	// `message: ""` is a template that was given and renders nothing.
	if tmpl.MustParse("").IsZero() || tmpl.MustParse("x").IsZero() {
		t.Error("a parsed template is never zero")
	}
	b, err := tmpl.MustParse("{{ .stream }}").MarshalText()
	if err != nil || string(b) != "{{ .stream }}" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse of a broken template did not panic")
		}
	}()
	tmpl.MustParse("{{ .nope }}")
}

func TestUnmarshalYAML(t *testing.T) {
	type params struct {
		Title *tmpl.Template `yaml:"title"`
		Text  tmpl.Template  `yaml:"text"`
	}
	tests := []struct {
		name      string
		src       string
		line, col int
		want      string
	}{
		{name: "good", src: "title: \"{{ .stream }}\"\ntext: |\n  {{ .domain }}\n  {{ .app }}\n"},
		{name: "unclosed action", src: "title: ok\ntext: \"{{ .stream \"\n", line: 2, col: 7, want: "template: 1: unclosed action"},
		{name: "unknown field", src: "title:   \"{{ .nope }}\"\n", line: 1, col: 10, want: `unknown field "nope"`},
		{name: "in a block scalar", src: "title: ok\ntext: |\n  line one\n  {{ .strem }}\n", line: 2, col: 7, want: `unknown field "strem"`},
		{name: "a mapping", src: "title: {a: b}\n", line: 1, col: 8, want: "want a template string"},
		{name: "a list", src: "text:\n  - a\n", line: 2, col: 3, want: "want a template string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal([]byte(tt.src), &n); err != nil {
				t.Fatal(err)
			}
			var p params
			err := yamlconf.Decode("f.yaml", n.Content[0], &p)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				out, err := p.Title.Render(sample())
				if err != nil || out != "room42" {
					t.Errorf("title = %q, %v", out, err)
				}
				if out, _ := p.Text.Render(sample()); out != "play.example.com\nlive\n" {
					t.Errorf("text = %q", out)
				}
				return
			}
			ds := yamlconf.Diagnostics(err)
			if len(ds) != 1 {
				t.Fatalf("got %v, want one diagnostic", err)
			}
			if d := ds[0]; d.Line != tt.line || d.Col != tt.col || !strings.Contains(d.Msg, tt.want) {
				t.Errorf("diagnostic %s, want f.yaml:%d:%d containing %q", d, tt.line, tt.col, tt.want)
			}
		})
	}
}

// text/template's parser recurses once per nested action and has no depth
// limit for if/with/range: a template nested a million deep overflows the
// stack, a fatal error no recover stops, so a bad rules save would kill the
// daemon on reload. Parse must refuse it. It runs in a child process so a
// crash fails this test only.
func TestDeeplyNestedTemplateIsAnError(t *testing.T) {
	const n = 1_000_000
	if os.Getenv("TMPL_DEEP_CHILD") == "1" {
		if _, err := tmpl.Parse(strings.Repeat("{{with 1}}", n) + strings.Repeat("{{end}}", n)); err == nil {
			t.Fatal("Parse accepted a template nested a million deep")
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDeeplyNestedTemplateIsAnError$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TMPL_DEEP_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("parsing a deeply nested template: %v\n%.1500s", err, out)
	}
}

// A template without actions renders as written with no data, and only
// such a template says it is literal: one whose comments or trim markers
// change the text it renders is executed.
func TestLiteral(t *testing.T) {
	for _, tc := range []struct {
		src     string
		literal bool
		want    string
	}{
		{"", true, ""},
		{"https://hooks.example.com/hook?a=1", true, "https://hooks.example.com/hook?a=1"},
		{"{{ .stream }}", false, "room1"},
		{"a {{ .stream }} b", false, "a room1 b"},
		{"{{/* a comment */}}", false, ""},
		{"a{{/* c */}}b", false, "ab"},
		{"a {{- /* c */ -}} b", false, "ab"},
	} {
		tp := tmpl.MustParse(tc.src)
		if tp.Literal() != tc.literal {
			t.Errorf("Literal(%q) = %v, want %v", tc.src, tp.Literal(), tc.literal)
		}
		got, err := tp.Render(map[string]any{"stream": "room1"})
		if err != nil || got != tc.want {
			t.Errorf("Render(%q) = %q, %v; want %q", tc.src, got, err, tc.want)
		}
	}
	var none *tmpl.Template
	if !none.Literal() {
		t.Error("no template: want it literal (it renders nothing)")
	}
}
