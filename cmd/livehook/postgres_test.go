package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store/postgres"
	"github.com/livehook/livehook/engine/store/postgres/pgtest"

	"github.com/livehook/livehook/internal/testwait"
)

// dsnPassword is the password a test DSN carries, which nothing the
// daemon writes may show.
func dsnPassword(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := u.User.Password()
	if !ok || len(pw) < 8 {
		t.Fatalf("the test DSN has no password worth looking for")
	}
	return pw
}

// serve --store runs on PostgreSQL: a callback is stored there, delivered,
// listed by the admin API; the DSN's password appears in no log, API
// reply or console page.
func TestServeOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	rc := newReceiver(t)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, webhookRules(rc.URL, "{ concurrency: 2, backoff: 50ms }"))
	d := startDaemonWith(t, serveConfig{rules: p, store: dsn})
	status, reply := post(t, d.url("/callbacks/record"), "application/json", fileCallback("live/room1/a.flv"))
	if status != http.StatusOK {
		t.Fatalf("callback: %d %v", status, reply)
	}
	if again, dup := post(t, d.url("/callbacks/record"), "application/json", fileCallback("live/room1/a.flv")); again != http.StatusOK || dup["id"] != reply["id"] {
		t.Errorf("the retry answered %d %v, want 200 with the first id %v", again, dup, reply["id"])
	}
	calls := rc.waitCalls(t, 1, 10*time.Second)
	if calls[0].Event.URI != "live/room1/a.flv" {
		t.Errorf("delivered %+v", calls[0].Event)
	}
	d.waitDrained(t)
	if n := len(rc.calls()); n != 1 {
		t.Errorf("%d deliveries, want 1: the retry is a duplicate", n)
	}
	var ev struct {
		Jobs []struct{ State string } `json:"jobs"`
	}
	getJSON(t, d.admURL(fmt.Sprintf("/api/events/%v", reply["id"])), &ev)
	if len(ev.Jobs) != 1 || ev.Jobs[0].State != "delivered" {
		t.Errorf("GET /api/events/%v: jobs %+v, want one delivered", reply["id"], ev.Jobs)
	}
	if status, _ := adminGet(t, d.admURL(""), "", "/readyz"); status != http.StatusOK {
		t.Errorf("/readyz = %d with the database up, want 200", status)
	}
	serving := d.log.waitFor(t, "the serving log", msgIs("livehook serving"))
	if got := fmt.Sprint(serving["store"]); !strings.HasPrefix(got, "postgres://") || !strings.Contains(got, "****") {
		t.Errorf("serving log names the store %q, want the DSN redacted", got)
	}
	pw := dsnPassword(t, dsn)
	for _, path := range []string{"/api/rules", "/api/events", "/api/deadletters", fmt.Sprintf("/api/events/%v", reply["id"]), "/metrics", "/", "/status", "/rules"} {
		status, body := adminGet(t, d.admURL(""), "", path)
		if status != http.StatusOK {
			t.Errorf("GET %s: %d", path, status)
		}
		if strings.Contains(string(body), pw) {
			t.Errorf("GET %s shows the DSN's password", path)
		}
	}
	for _, r := range d.log.records() {
		if strings.Contains(fmt.Sprint(r), pw) {
			t.Errorf("a log record shows the DSN's password: %v", r["msg"])
		}
	}
}

// With the database cut off, the daemon is not ready and answers 503,
// never 200; once it is back, callbacks are taken and delivered again,
// those answered before the cut included.
func TestServeWithoutTheDatabase(t *testing.T) {
	proxy, dsn := pgtest.NewProxy(t, pgtest.DSN(t))
	rc := newReceiver(t)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, webhookRules(rc.URL, "{ concurrency: 2, backoff: 50ms, max_backoff: 200ms }"))
	d := startDaemonWith(t, serveConfig{rules: p, store: dsn})
	if status, _ := post(t, d.url("/callbacks/record"), "application/json", fileCallback("live/room1/before.flv")); status != http.StatusOK {
		t.Fatalf("callback before the cut: %d", status)
	}
	rc.waitCalls(t, 1, 10*time.Second)

	proxy.Cut()
	if status, _ := adminGet(t, d.admURL(""), "", "/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with the database cut off, want 503", status)
	}
	for i := range 5 {
		status, reply := post(t, d.url("/callbacks/record"), "application/json", fileCallback(fmt.Sprintf("live/room1/cut-%d.flv", i)))
		if status != http.StatusServiceUnavailable {
			t.Errorf("callback %d while cut off: %d %v, want 503", i, status, reply)
		}
	}

	proxy.Restore()
	var status int
	if !testwait.Within(20*time.Second, func() bool {
		status, _ = adminGet(t, d.admURL(""), "", "/readyz")
		return status == http.StatusOK
	}) {
		t.Fatalf("/readyz still %d 20s after the database came back", status)
	}
	if status, _ := post(t, d.url("/callbacks/record"), "application/json", fileCallback("live/room1/after.flv")); status != http.StatusOK {
		t.Fatalf("callback after the database came back: %d", status)
	}
	calls := rc.waitCalls(t, 2, 20*time.Second)
	if calls[1].Event.URI != "live/room1/after.flv" {
		t.Errorf("second delivery %q, want after.flv", calls[1].Event.URI)
	}
	for _, c := range rc.calls() {
		if strings.Contains(c.Event.URI, "cut-") {
			t.Errorf("%s was answered 503 and delivered all the same", c.Event.URI)
		}
	}
}

func TestMigrateCommand(t *testing.T) {
	dsn := pgtest.DSN(t)
	var out, errb bytes.Buffer
	env := func(k string) (string, bool) {
		if k == "LIVEHOOK_STORE" {
			return dsn, true
		}
		return "", false
	}
	if err := run(context.Background(), []string{"migrate"}, &out, &errb, env); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("schema at version %d", postgres.SchemaVersion())) || strings.Contains(out.String(), dsnPassword(t, dsn)) {
		t.Errorf("migrate printed %q, want the version and no password", out.String())
	}
	for _, args := range [][]string{{"migrate", "--store", "./data"}, {"migrate"}, {"migrate", "--store", dsn, "extra"}} {
		err := run(context.Background(), args, &out, &errb, nil)
		if ee, ok := err.(*exitError); !ok || ee.code != 2 {
			t.Errorf("%v = %v, want a usage error", args[1:], err)
		}
	}
}
