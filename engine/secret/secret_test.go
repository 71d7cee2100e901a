package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/secret"
)

const token = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN-abc123"

type settings struct {
	Name string        `json:"name" yaml:"name"`
	URL  secret.Secret `json:"url" yaml:"url"`
	Key  *secret.Secret
}

func TestFormatting(t *testing.T) {
	s := secret.New(token)
	cfg := settings{Name: "oncall", URL: s, Key: &s}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"%v", fmt.Sprintf("%v", s), "****"},
		{"%s", fmt.Sprintf("url=%s", s), "url=****"},
		{"%+v", fmt.Sprintf("%+v", s), "****"},
		{"%#v", fmt.Sprintf("%#v", s), "****"},
		{"%q", fmt.Sprintf("%q", s), `"****"`},
		{"Println", fmt.Sprintln(s), "****\n"},
		{"String", s.String(), "****"},
		{"GoString", s.GoString(), "****"},
		{"struct %v", fmt.Sprintf("%v", cfg), "{oncall **** "},
		{"struct %+v", fmt.Sprintf("%+v", cfg), "{Name:oncall URL:**** Key:"},
		{"pointer", fmt.Sprintf("%v", &s), "****"},
		{"empty secret prints empty", fmt.Sprintf("[%v]", secret.Secret{}), "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.got, "TOKEN") {
				t.Fatalf("secret leaked: %s", tt.got)
			}
			if !strings.HasPrefix(tt.got, tt.want) {
				t.Errorf("got %q, want it to start with %q", tt.got, tt.want)
			}
		})
	}
	if s.Reveal() != token || s.IsZero() || !(secret.Secret{}).IsZero() {
		t.Error("Reveal/IsZero")
	}
}

// Action instances keep their settings in unexported fields (slack keeps
// `url secret.Secret`); printing such a struct with %v or %+v must not show
// the value either.
func TestFormattingUnexportedField(t *testing.T) {
	type instance struct {
		name string
		url  secret.Secret
	}
	in := instance{name: "oncall", url: secret.New(token)}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		t.Run(verb, func(t *testing.T) {
			if out := fmt.Sprintf(verb, in); strings.Contains(out, "TOKEN") {
				t.Errorf("secret leaked through an unexported field: %s", out)
			}
		})
	}
}

func TestSlog(t *testing.T) {
	s := secret.New(token)
	tests := []struct {
		name string
		h    func(*bytes.Buffer) slog.Handler
	}{
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			slog.New(tt.h(&b)).Info("sending", "url", s, "ptr", &s, "cfg", settings{Name: "x", URL: s})
			out := b.String()
			if strings.Contains(out, "TOKEN") {
				t.Fatalf("secret leaked: %s", out)
			}
			if !strings.Contains(out, "****") {
				t.Errorf("no redaction marker in %s", out)
			}
		})
	}
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "url", s)
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["url"] != "****" {
		t.Errorf("json log url = %v, want ****", rec["url"])
	}
}

func TestJSON(t *testing.T) {
	s := secret.New(token)
	b, err := json.Marshal(settings{Name: "oncall", URL: s, Key: &s})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"oncall","url":"****","Key":"****"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	b, err = json.Marshal(map[string]secret.Secret{"k": s})
	if err != nil || string(b) != `{"k":"****"}` {
		t.Errorf("json map = %s, %v", b, err)
	}
}

func TestYAML(t *testing.T) {
	s := secret.New(token)
	b, err := yaml.Marshal(settings{Name: "oncall", URL: s, Key: &s})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "TOKEN") {
		t.Fatalf("secret leaked: %s", b)
	}
	if want := "name: oncall\nurl: '****'\nkey: '****'\n"; string(b) != want {
		t.Errorf("yaml =\n%s\nwant\n%s", b, want)
	}
}

func TestUnmarshalYAML(t *testing.T) {
	tests := []struct {
		name, src, want string
		wantErr         bool
	}{
		{name: "string", src: "url: " + token + "\n", want: token},
		{name: "quoted", src: "url: \"SEC123\"\n", want: "SEC123"},
		{name: "number-looking", src: "url: 0123\n", want: "0123"},
		{name: "a mapping", src: "url: {a: b}\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s settings
			err := yaml.Unmarshal([]byte(tt.src), &s)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error, decoded %q", s.URL.Reveal())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.URL.Reveal() != tt.want {
				t.Errorf("Reveal = %q, want %q", s.URL.Reveal(), tt.want)
			}
		})
	}
}

func TestRedactor(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"nothing known", nil, "POST " + token, "POST " + token},
		{"one value", []string{"TOKEN-abc123"}, "POST " + token + " failed", "POST https://oapi.dingtalk.com/robot/send?access_token=**** failed"},
		{"every occurrence", []string{"SECabcd"}, "SECabcd and SECabcd", "**** and ****"},
		{"longest first", []string{"abcd", "abcdefgh"}, "x abcdefgh y abcd", "x **** y ****"},
		{"longest first, added in the other order", []string{"abcdefgh", "abcd"}, "abcdefgh", "****"},
		{"values under 4 bytes are ignored", []string{"", "a", "on", "yes"}, "a yes on", "a yes on"},
		{"four bytes count", []string{"pass"}, "password", "****word"},
		{"duplicates are harmless", []string{"SECabcd", "SECabcd"}, "SECabcd", "****"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r secret.Redactor
			r.Add(tt.values...)
			if got := r.Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactorNilAndMerge(t *testing.T) {
	var nilR *secret.Redactor
	if got := nilR.Redact("abc TOKEN"); got != "abc TOKEN" {
		t.Errorf("nil Redact = %q", got)
	}
	var zero secret.Redactor
	if got := zero.Redact("abc"); got != "abc" {
		t.Errorf("zero Redact = %q", got)
	}
	var a, b secret.Redactor
	a.Add("alpha-secret")
	b.Add("beta-secret")
	a.Merge(&b)
	a.Merge(nil)
	if got := a.Redact("alpha-secret beta-secret"); got != "**** ****" {
		t.Errorf("merged Redact = %q", got)
	}
	if got := b.Redact("alpha-secret"); got != "alpha-secret" {
		t.Errorf("Merge changed its argument: %q", got)
	}
}

func TestRedactorConcurrentReads(t *testing.T) {
	var r secret.Redactor
	r.Add("TOKEN-abc123")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if got := r.Redact(token); strings.Contains(got, "TOKEN") {
					t.Errorf("leaked: %s", got)
					return
				}
			}
		})
	}
	wg.Wait()
}
