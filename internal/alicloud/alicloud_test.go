package alicloud_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/internal/alicloud"
)

func TestCheckRegion(t *testing.T) {
	for region, ok := range map[string]bool{"cn-shanghai": true, "ap-southeast-1": true, "": false, "CN-Shanghai": false, "cn_shanghai": false, "cn-": false} {
		if err := alicloud.CheckRegion(region); (err == nil) != ok {
			t.Errorf("CheckRegion(%q) = %v, want ok=%v", region, err, ok)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	cases := []struct {
		in, want string // want "" for an error
	}{
		{"live.aliyuncs.com", "https://live.aliyuncs.com"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://live.aliyuncs.com/", "https://live.aliyuncs.com/"},
		{"ftp://live.aliyuncs.com", ""},
		{"https://live.aliyuncs.com/path", ""},
		{"https://live.aliyuncs.com/?a=b", ""},
		{"https://user:pw@live.aliyuncs.com", ""},
		{"https://", ""},
	}
	for _, tt := range cases {
		u, err := alicloud.ParseEndpoint(tt.in, "https://live.aliyuncs.com")
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseEndpoint(%q) = %v, want an error", tt.in, u)
		case tt.want != "" && (err != nil || u.String() != tt.want):
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
}

func TestAccessKeyFor(t *testing.T) {
	const envID, envSecret = "LIVEHOOK_TEST_AK_ID", "LIVEHOOK_TEST_AK_SECRET"
	t.Setenv(envID, "LTAIenv")
	t.Setenv(envSecret, "env-secret-value")
	var r secret.Redactor
	k, err := alicloud.AccessKeyFor(secret.Secret{}, secret.Secret{}, envID, envSecret, &r)
	if err != nil || k.ID != "LTAIenv" || k.Secret != "env-secret-value" || !k.FromEnv {
		t.Fatalf("from the environment: %+v, %v", k, err)
	}
	if got := r.Redact("key env-secret-value"); strings.Contains(got, "env-secret-value") {
		t.Errorf("the environment's secret is not redacted: %q", got)
	}
	k, err = alicloud.AccessKeyFor(secret.New("LTAIset"), secret.New("set-secret"), envID, envSecret, nil)
	if err != nil || k.ID != "LTAIset" || k.FromEnv {
		t.Errorf("from the settings: %+v, %v", k, err)
	}
	if _, err := alicloud.AccessKeyFor(secret.New("LTAIset"), secret.Secret{}, envID, envSecret, nil); err == nil {
		t.Error("an id without its secret was taken")
	}
	t.Setenv(envSecret, "")
	if _, err := alicloud.AccessKeyFor(secret.Secret{}, secret.Secret{}, envID, envSecret, nil); err == nil || !strings.Contains(err.Error(), envSecret) {
		t.Errorf("no credentials: err = %v, want one naming %s", err, envSecret)
	}
}

func TestTransportDetailHidesTheQuery(t *testing.T) {
	ue := &url.Error{Op: "Post", URL: "https://live.aliyuncs.com/?AccessKeyId=LTAIsecret&Signature=abc", Err: errors.New("connection refused")}
	got := alicloud.TransportDetail(ue)
	if got != "Post https://live.aliyuncs.com/: connection refused" {
		t.Errorf("TransportDetail = %q", got)
	}
}

func TestGuardTurnsAPanicIntoAnError(t *testing.T) {
	err := alicloud.Guard(func() error { panic("interface conversion: interface {} is nil, not string") })
	var m *alicloud.MalformedReply
	if !errors.As(err, &m) || !strings.Contains(err.Error(), "could not read the reply") {
		t.Errorf("Guard = %v", err)
	}
}

func TestWithContextStopsTheRequest(t *testing.T) {
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	client := &http.Client{Transport: alicloud.WithContext(ctx, http.DefaultTransport)}
	go func() { <-started; cancel(errors.New("shutting down")) }()
	_, err := client.Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("err = %v, want the context's cause", err)
	}
}
