package secret_test

import (
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/secret"
)

func TestParseURL(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://oapi.dingtalk.com/robot/send?access_token=abc": true,
		"http://127.0.0.1:8080/hook":                            true,
		"oapi.dingtalk.com/robot/send?access_token=abc":         false,
		"ftp://example.com/x":                                   false,
		"https:///no-host":                                      false,
		"https://example.com/%zz":                               false,
	} {
		if u, ok := secret.ParseURL(raw); ok != want || ok && u.String() != raw {
			t.Errorf("ParseURL(%q) = %v, %v; want ok %v", raw, u, ok, want)
		}
	}
}

func TestRedactedURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://oapi.dingtalk.com/robot/send?access_token=abc": "https://oapi.dingtalk.com/robot/send?access_token=****",
		"https://user:pw@example.com/a%20b?x=1&y=2":             "https://****@example.com/a%20b?x=****&y=****",
		"https://example.com/hook":                              "https://example.com/hook",
	} {
		u, ok := secret.ParseURL(raw)
		if !ok {
			t.Fatalf("ParseURL(%q) failed", raw)
		}
		if got := secret.RedactedURL(u); got != want {
			t.Errorf("RedactedURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestURLHider(t *testing.T) {
	const (
		token   = "0123456789abcdefTOKEN"
		signing = "SECsigningsecret0123"
		pw      = "hunter2-password"
	)
	raw := "https://bot:" + pw + "@robot.example.com/send?access_token=" + token + "&x=hello%20there"
	u, ok := secret.ParseURL(raw)
	if !ok {
		t.Fatal("ParseURL failed")
	}
	h := secret.NewURLHider(raw, u, "https://robot.example.com/send?****", signing)
	tests := []struct {
		name, in, want string
	}{
		{"the URL as written", `Post "` + raw + `": EOF`, `Post "https://robot.example.com/send?****": EOF`},
		{"the URL as net/http prints it", "dial " + u.String(), "dial https://robot.example.com/send?****"},
		{"the token alone", "bad token " + token, "bad token ****"},
		{"a decoded query value", "greeting hello there", "greeting ****"},
		{"the password alone", "user bot pw " + pw, "user bot pw ****"},
		{"a further secret", "sign with " + signing, "sign with ****"},
		{"ordinary text", "send too fast", "send too fast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.Hide(tt.in)
			if got != tt.want {
				t.Errorf("Hide(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, s := range []string{token, signing, pw} {
				if strings.Contains(got, s) {
					t.Errorf("Hide(%q) = %q shows a secret", tt.in, got)
				}
			}
		})
	}
}
