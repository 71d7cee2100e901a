package postgres

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://livehook:s3cret@db.example.com:5432/livehook?sslmode=require", "postgres://livehook:****@db.example.com:5432/livehook?sslmode=require"},
		{"postgresql://livehook@db/livehook", "postgresql://livehook@db/livehook"},
		{"postgres://u:p%40ss@db/x?password=other&search_path=lh", "postgres://u:****@db/x?password=****&search_path=lh"},
		{"postgres://u:pw@db/x?sslkey=/k&sslpassword=kp", "postgres://u:****@db/x?sslkey=****&sslpassword=****"},
		{"host=db password=s3cret", "postgres://****"},
		{"postgres://u:pw@[::1/x", "postgres://****"},
	}
	for _, tc := range tests {
		if got := Redact(tc.dsn); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

// A DSN that cannot be parsed is refused without quoting its secrets.
func TestParseErrorKeepsSecrets(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cret-pw@db:notaport/x",
		"postgres://u:s3cret-pw@db/x?connect_timeout=soon",
		"postgres://u:s3cret-pw@db/x?sslmode=sometimes",
	} {
		_, err := parseDSN(dsn)
		if err == nil {
			t.Errorf("parseDSN(%q) succeeded, want an error", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("parseDSN(%q) error shows the password: %v", dsn, err)
		}
	}
}

// FuzzRedact: whatever the DSN, Redact never panics, shows a URL, and
// that URL's password and secret parameters are ****.
func FuzzRedact(f *testing.F) {
	f.Add("livehook", "s3cret", "db:5432", "sslmode=disable")
	f.Add("u", "p@ss:w/rd", "[::1]:5432", "password=x&search_path=a")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, user, pw, host, query string) {
		dsn := "postgres://" + url.UserPassword(user, pw).String() + "@" + host + "/db?" + query
		got := Redact(dsn)
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("Redact(%q) = %q, which is no URL: %v", dsn, got, err)
		}
		if u.User != nil {
			if p, ok := u.User.Password(); ok && p != "****" {
				t.Errorf("Redact(%q) = %q shows password %q", dsn, got, p)
			}
		}
		for k, vs := range u.Query() {
			for _, v := range vs {
				if secretParam(k) && v != "****" {
					t.Errorf("Redact(%q) = %q shows %s", dsn, got, k)
				}
			}
		}
	})
}
