package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// rulesLogging returns a rules file whose single rule logs msg for every event.
func rulesLogging(msg string) string {
	return "rules:\n  - name: every\n    do:\n      - type: log\n        with: { message: \"" + msg + "\" }\n"
}

// expectRulesLog posts an event and waits for the log action to write msg.
func expectRulesLog(t *testing.T, d *testDaemon, msg string) {
	t.Helper()
	_, reply := post(t, d.url("/events/probe"), "", []byte(`{"n":1}`))
	id := reply["id"]
	d.log.waitFor(t, "logging "+msg, func(r map[string]any) bool { return r["msg"] == msg && r["event_id"] == id })
}

// waitRules waits until /api/rules shows the daemon running the rules now
// at path.
func waitRules(t *testing.T, d *testDaemon, path string) {
	t.Helper()
	want := hashOfRules(t, path)
	const within = 5 * time.Second
	var rep struct {
		Hash       string `json:"hash"`
		LastReload struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"last_reload"`
	}
	if !testwait.Within(within, func() bool {
		getJSON(t, d.admURL("/api/rules"), &rep)
		return rep.Hash == want && rep.LastReload.OK
	}) {
		t.Fatalf("/api/rules after %v: hash %s, last reload %+v; want hash %s, loaded", within, rep.Hash, rep.LastReload, want)
	}
}

func TestHotReload(t *testing.T) {
	cases := []struct {
		name string
		// setup lays out the rules and returns the PATH to serve plus an
		// edit that changes the rules to log "v2".
		setup func(t *testing.T, dir string) (path string, edit func())
	}{
		{"in-place write", func(t *testing.T, dir string) (string, func()) {
			p := filepath.Join(dir, "rules.yaml")
			writeFile(t, p, rulesLogging("v1"))
			return p, func() {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.WriteString(rulesLogging("v2")); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"rename-over save", func(t *testing.T, dir string) (string, func()) {
			p := filepath.Join(dir, "rules.yaml")
			writeFile(t, p, rulesLogging("v1"))
			return p, func() {
				tmp := filepath.Join(dir, ".rules.yaml.swp")
				writeFile(t, tmp, rulesLogging("v2"))
				if err := os.Rename(tmp, p); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"ConfigMap symlink swap", func(t *testing.T, dir string) (string, func()) {
			// The layout kubelet writes: files link through ..data, and an
			// update re-points ..data at a new timestamped directory.
			v1 := filepath.Join(dir, "..2026_11_27_v1")
			must(t, os.Mkdir(v1, 0o755))
			writeFile(t, filepath.Join(v1, "rules.yaml"), rulesLogging("v1"))
			must(t, os.Symlink("..2026_11_27_v1", filepath.Join(dir, "..data")))
			must(t, os.Symlink("..data/rules.yaml", filepath.Join(dir, "rules.yaml")))
			return dir, func() {
				v2 := filepath.Join(dir, "..2026_11_27_v2")
				must(t, os.Mkdir(v2, 0o755))
				writeFile(t, filepath.Join(v2, "rules.yaml"), rulesLogging("v2"))
				must(t, os.Symlink("..2026_11_27_v2", filepath.Join(dir, "..data_tmp")))
				must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
				must(t, os.RemoveAll(v1))
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, edit := tc.setup(t, t.TempDir())
			d := startDaemon(t, path)
			expectRulesLog(t, d, "v1")
			edit()
			waitRules(t, d, path)
			expectRulesLog(t, d, "v2")
		})
	}
}

func TestInvalidEditKeepsOldRules(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, rulesLogging("v1"))
	d := startDaemon(t, p)
	writeFile(t, p, "rules:\n  - name: every\n    when: duraton < 10\n    do:\n      - type: log\n")
	rec := d.log.waitFor(t, "reporting the bad edit", func(r map[string]any) bool {
		msg, _ := r["msg"].(string)
		return strings.Contains(msg, "duraton") && r["line"] == float64(3)
	})
	if rec["file"] != p || rec["level"] != "ERROR" {
		t.Errorf("bad edit reported as %v, want an ERROR at %s line 3", rec, p)
	}
	expectRulesLog(t, d, "v1")

	// /api/rules shows the failed reload while the old rules keep running.
	resp, err := http.Get(d.admURL("/api/rules"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rep := decodeJSON(t, resp.Body)
	last := rep["last_reload"].(map[string]any)
	if last["ok"] != false || !strings.Contains(last["error"].(string), "duraton") || len(rep["rules"].([]any)) != 1 {
		t.Errorf("/api/rules after a bad edit: %v", rep)
	}
}

func TestReloadOnSIGHUPAndEndpoint(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, rulesLogging("v1"))
	// With the watch off, only an explicit reload can pick up a change.
	d := startDaemonWith(t, serveConfig{rules: p, watch: false})
	expectRulesLog(t, d, "v1")

	writeFile(t, p, rulesLogging("v2"))
	resp, err := http.Post(d.admURL("/-/reload"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/-/reload answered %d", resp.StatusCode)
	}
	expectRulesLog(t, d, "v2")

	writeFile(t, p, "rules: [")
	resp, err = http.Post(d.admURL("/-/reload"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := decodeJSON(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body["error"].(string), "rules.yaml:1:") {
		t.Errorf("/-/reload of a broken file: %d %v, want 422 with file:line", resp.StatusCode, body)
	}
	expectRulesLog(t, d, "v2")

	writeFile(t, p, rulesLogging("v3"))
	must(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	// The signal is handled asynchronously: wait for the load it causes.
	waitRules(t, d, p)
	expectRulesLog(t, d, "v3")
}

// livehook_rules_info names the rules in force by the hash /api/rules
// reports, in one series: a reload replaces it, so replicas halfway
// through a rollout show two hashes between them, and a broken edit
// leaves it as it was.
func TestRulesInfoMetric(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, rulesLogging("v1"))
	d := startDaemonWith(t, serveConfig{rules: p, watch: false})
	rulesHash := func() string {
		var rep struct {
			Hash string `json:"hash"`
		}
		getJSON(t, d.admURL("/api/rules"), &rep)
		return rep.Hash
	}
	reload := func() {
		t.Helper()
		resp, err := http.Post(d.admURL("/-/reload"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	shows := func(hash string) {
		t.Helper()
		m := d.metrics(t)
		if m[`livehook_rules_info{hash="`+hash+`"}`] != 1 || sumSeries(m, "livehook_rules_info") != 1 {
			t.Errorf("/metrics shows rules info %v, want only hash %s", series(m, "livehook_rules_info"), hash)
		}
	}
	first := rulesHash()
	shows(first)

	writeFile(t, p, rulesLogging("v2"))
	reload()
	second := rulesHash()
	if second == first {
		t.Fatalf("the edited rules report the hash %s of the old ones", first)
	}
	shows(second)

	writeFile(t, p, "rules: [")
	reload()
	shows(second)
}

// series is every series of the family name, for a message.
func series(m map[string]float64, name string) map[string]float64 {
	out := map[string]float64{}
	for s, v := range m {
		if s == name || strings.HasPrefix(s, name+"{") {
			out[s] = v
		}
	}
	return out
}
