package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// fakeOSS accepts async processing requests the way OSS answers them. The
// oss action's own tests verify the signature; this one checks what a
// deployment would: the object, the process string and the save-as target.
type fakeOSS struct {
	*httptest.Server
	mu       sync.Mutex
	requests []ossRequest
}

type ossRequest struct{ Path, Query, Body, Auth string }

func newFakeOSS(t *testing.T) *fakeOSS {
	f := &fakeOSS{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, ossRequest{Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body), Auth: r.Header.Get("Authorization")})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-oss-request-id", "1D99D2B0-7A9F-5C1E-9B8A-3C6E2F41A7D5")
		_, _ = io.WriteString(w, `{"EventId":"181-1kZUlN60OH4fWOcOjZEnGnG-0","RequestId":"1D99D2B0-7A9F-5C1E-9B8A-3C6E2F41A7D5","TaskId":"MediaConvert-e4a737df-69e9-4fca-8d9b-17c40ea3a3f1"}`)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeOSS) seen() []ossRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ossRequest(nil), f.requests...)
}

func chainRules(ossURL, alertURL string) string {
	return `actions:
  transcode:
    type: oss
    region: cn-shanghai
    endpoint: ` + ossURL + `
    bucket: rec-bucket
    access_key_id: LTAI5tChainTestKeyId
    access_key_secret: chain-test-secret-0123456789
    mode: async
    process: video/convert,f_mp4,vcodec_h264,acodec_aac
    save_as: { object: '{{ .uri | trimSuffix ".flv" }}.mp4' }
    notify_topic: livehook-jobs
  alert:
    type: webhook
    url: ` + alertURL + `/alerts
    body: '{"text": "MP4 {{ .payload.Status | lower }}: {{ .payload.TaskId }}"}'
rules:
  - name: flv-to-mp4
    when: kind == "file" && format == "flv"
    do:
      - action: transcode
  - name: transcode-finished
    when: source == "oss_jobs" && payload.Status in ["Succeeded", "Failed"]
    do:
      - action: alert
`
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestTranscodeChain follows the chain end to end: a recording callback
// submits an OSS job, the job's completion comes back as an event, and a
// rule on it alerts.
func TestTranscodeChain(t *testing.T) {
	oss, alerts := newFakeOSS(t), newReceiver(t)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, chainRules(oss.URL, alerts.URL))
	d := startDaemon(t, p)

	status, reply := post(t, d.url("/callbacks/record"), "", readFile(t, filepath.Join("..", "..", "testdata", "events", "file_flv.json")))
	if status != http.StatusOK {
		t.Fatalf("callback answered %d", status)
	}
	id := reply["id"].(string)
	testwait.Within(10*time.Second, func() bool { return len(oss.seen()) > 0 })
	reqs := oss.seen()
	if len(reqs) != 1 {
		t.Fatalf("fake OSS saw %d requests, want 1", len(reqs))
	}
	src := "live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40"
	wantBody := "x-oss-async-process=video/convert,f_mp4,vcodec_h264,acodec_aac|sys/saveas,o_" + b64url(src+".mp4") + "/notify,topic_" + b64url("livehook-jobs")
	if r := reqs[0]; r.Path != "/rec-bucket/"+src+".flv" || r.Query != "x-oss-async-process" || r.Body != wantBody || !strings.HasPrefix(r.Auth, "OSS4-HMAC-SHA256 Credential=LTAI5tChainTestKeyId/") {
		t.Errorf("OSS request %+v\nwant path /rec-bucket/%s.flv, body %s, signed", r, src, wantBody)
	}

	// The job id is recorded with the delivery.
	var detail struct {
		Jobs []struct {
			State    string
			Attempts []struct{ IDs map[string]string }
		}
	}
	if !testwait.Within(10*time.Second, func() bool {
		return tryGetJSON(t, d.admURL("/api/events/"+id), &detail) == http.StatusOK && len(detail.Jobs) == 1 && detail.Jobs[0].State == "delivered"
	}) {
		t.Fatalf("transcode job: %+v", detail)
	}
	if got := detail.Jobs[0].Attempts[0].IDs["TaskId"]; got != "MediaConvert-e4a737df-69e9-4fca-8d9b-17c40ea3a3f1" {
		t.Errorf("recorded TaskId %q", got)
	}

	// The job's completion arrives as a generic event and alerts.
	status, _ = post(t, d.url("/events/oss_jobs"), "", readFile(t, filepath.Join("..", "..", "testdata", "events", "generic", "oss_job_succeeded.json")))
	if status != http.StatusOK {
		t.Fatalf("completion event answered %d", status)
	}
	alerts.waitCalls(t, 1, 10*time.Second)
	d.waitDrained(t) // every job the completion planned has run
	if n := len(oss.seen()); n != 1 {
		t.Errorf("the completion event submitted %d more OSS jobs", n-1)
	}
}

// TestTestShowsTheOSSSubmission: `livehook test` shows the exact process
// string and save-as target a rule would submit, with credentials hidden.
func TestTestShowsTheOSSSubmission(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, chainRules("http://127.0.0.1:1", "http://127.0.0.1:1"))
	stdout, stderr, code := runCLI(t, nil, "test", p, filepath.Join("..", "..", "testdata", "events", "file_flv.json"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	src := "live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40"
	for _, want := range []string{
		"video/convert,f_mp4,vcodec_h264,acodec_aac|sys/saveas,o_" + b64url(src+".mp4"),
		"oss://rec-bucket/" + src + ".mp4",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("livehook test output lacks %q:\n%s", want, stdout)
		}
	}
	for _, secret := range []string{"chain-test-secret-0123456789", "LTAI5tChainTestKeyId"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("livehook test output shows the credential %q", secret)
		}
	}
}
