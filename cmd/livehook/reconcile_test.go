package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/sweeper/livetest"
)

// TestReconcileAgainstTheDaemon: `livehook reconcile` asks the running
// daemon to read back Aliyun's records; the callback it received is
// skipped, the one it missed is added marked reconciled and shows in
// /api/events and /metrics, and asking again adds nothing.
func TestReconcileAgainstTheDaemon(t *testing.T) {
	const ak, sk = "LTAI5tReconcileKey01", "s3cr3t-reconcile-never-shown-1"
	live := livetest.New(t, ak, sk, "live.aliyunlive.com")
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, fmt.Sprintf(`sweeper:
  region: cn-shanghai
  endpoint: %s
  access_key_id: %s
  access_key_secret: %s
  domains:
    aliyun_live_record: [live.aliyunlive.com]
rules:
  - name: late-recording
    when: reconciled && kind == "file"
    do: [{type: log, with: {message: "late file {{ .uri }}"}}]
`, live.URL, ak, sk))
	d := startDaemonWith(t, serveConfig{rules: rulesPath, retention: 7 * 24 * time.Hour})

	received := string(readFile(t, filepath.Join("..", "..", "testdata", "events", "file_flv.json")))
	if status, _ := post(t, d.url("/callbacks/record"), "", []byte(received)); status != http.StatusOK {
		t.Fatalf("callback answered %d", status)
	}
	missed := strings.Replace(received, "0_2017-03-08-23:09:46", "1_2017-03-08-23:10:40", 1)
	now := time.Now().UTC()
	live.Add(livetest.RecordAction, "live.aliyunlive.com", livetest.Record{App: "live", Stream: "hello", Type: "file_created", Content: received, Time: now.Add(-10 * time.Minute)})
	live.Add(livetest.RecordAction, "live.aliyunlive.com", livetest.Record{App: "live", Stream: "hello", Type: "file_created", Content: missed, Result: "failed", Time: now.Add(-5 * time.Minute)})
	d.waitDrained(t)

	admin := d.admURL("")
	stdout, stderr, code := runCLI(t, nil, "reconcile", "--since", "1h", "--admin", admin)
	if code != 0 || !strings.Contains(stdout, "2 (2 records), 1 already received, 1 reconciled, 0 failed") {
		t.Fatalf("reconcile: exit %d\n%s%s", code, stdout, stderr)
	}
	d.waitDrained(t)
	status, body := adminGet(t, admin, "", "/api/events?source=aliyun_live_record")
	var out struct{ Events []*store.EventRecord }
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil || len(out.Events) != 2 {
		t.Fatalf("GET /api/events: %d %s", status, body)
	}
	late := out.Events[0] // newest first
	if !late.Event.Reconciled || !strings.HasPrefix(late.Event.URI, "live/hello/1_") || len(late.Matched) != 1 || out.Events[1].Event.Reconciled {
		t.Errorf("events: the reconciled one %+v matched %v; the received one reconciled=%v", late.Event, late.Matched, out.Events[1].Event.Reconciled)
	}
	if got := d.metrics(t)[`livehook_reconciled_total{source="aliyun_live_record"}`]; got != 1 {
		t.Errorf("livehook_reconciled_total = %v, want 1", got)
	}
	status, body = adminGet(t, admin, "", "/api/events?source=livehook_reconcile")
	if status != http.StatusOK || !strings.Contains(string(body), `"reconciled": 1`) {
		t.Errorf("the sweep's report event: %d %s", status, body)
	}

	stdout, _, code = runCLI(t, nil, "reconcile", "--since", "1h", "--admin", admin)
	if code != 0 || !strings.Contains(stdout, "2 already received, 0 reconciled") {
		t.Errorf("again: exit %d\n%s", code, stdout)
	}
	_, stderr, code = runCLI(t, nil, "reconcile", "--since", "200h", "--admin", admin)
	if code != 1 || !strings.Contains(stderr, "400 Bad Request: look back 200h0m0s: Aliyun keeps 7 days") {
		t.Errorf("--since 200h: exit %d, %s", code, stderr)
	}
	for _, r := range d.log.records() {
		if line, _ := json.Marshal(r); strings.Contains(string(line), sk) {
			t.Fatalf("the log shows the AccessKey secret: %s", line)
		}
	}
}
