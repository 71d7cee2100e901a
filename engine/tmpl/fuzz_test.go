package tmpl_test

import (
	"strings"
	"testing"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/livehook/livehook/engine/tmpl"
)

// FuzzTemplate: no template source may panic Parse or Render. There is no
// recover here on purpose: a panic is a bug.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"", "plain", "{{ .stream }}", "{{ .duraton }}", "{{ $.nope }}", "{{ .stream ",
		"{{ range .payload.items }}{{ .name }}{{ end }}", "{{ with .payload }}{{ .anything }}{{ end }}",
		`{{ .event | replace "record_" "" | upper }}`, `{{ printf "%.0f" .duration }}`, "{{ sub .stop_time .start_time }}",
		"{{ index .payload.items 5 }}", "{{ div 1 0 }}", `{{ define "x" }}{{ .stream }}{{ end }}{{ template "x" . }}`,
		`{{ .received_at | date "2006-01-02" }}`, "{{ toJson .payload }}", "{{ if .event }}a{{ else if .uri }}b{{ else }}c{{ end }}",
		"{{ $x := .stream }}{{ $x }}", "{{- .stream -}}", "{{/* c */}}", "{{ range $i, $e := .payload.items }}{{ $i }}{{ break }}{{ end }}",
	} {
		f.Add(s)
	}
	data := sample()
	f.Fuzz(func(t *testing.T, src string) {
		tp, err := tmpl.Parse(src)
		if err != nil {
			return
		}
		_, _ = tp.Render(data)
		if tp.Literal() {
			// It renders as written without being run: running it must
			// give the same.
			var b strings.Builder
			if err := template.Must(template.New("").Funcs(sprig.TxtFuncMap()).Parse(src)).Execute(&b, data); err != nil || b.String() != src {
				t.Errorf("literal %q renders as %q, %v when run", src, b.String(), err)
			}
		}
	})
}
