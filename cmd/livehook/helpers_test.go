package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func decodeJSON(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
	return m
}

// hashOfRules is the hash the daemon reports for the rules now at path.
func hashOfRules(t *testing.T, path string) string {
	t.Helper()
	set, err := loadForCLI(path, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	return set.Hash
}

// adminGet GETs path from the admin listener at base ("http://host:port"),
// with the bearer token when one guards it, and returns the status and body.
func adminGet(t *testing.T, base, token, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// scrapeMetrics reads the /metrics of the admin listener at base: each
// series as the text format names it (`name` or `name{label="value",...}`)
// with its value.
func scrapeMetrics(t *testing.T, base, token string) map[string]float64 {
	t.Helper()
	status, body := adminGet(t, base, token, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	series := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("GET /metrics: unreadable line %q", line)
		}
		series[line[:i]] = v
	}
	return series
}

// sumSeries adds up every series of the family name; a family with no
// series yet (a labelled counter never counted) sums to 0.
func sumSeries(series map[string]float64, name string) float64 {
	sum := 0.0
	for s, v := range series {
		if s == name || strings.HasPrefix(s, name+"{") {
			sum += v
		}
	}
	return sum
}

// waitDrainedAt waits until the daemon whose admin listener is at base has
// evaluated every event it accepted and finished every delivery, retries
// included (livehook_events_unevaluated and livehook_jobs_pending both 0,
// read from one consistent look at the store). Only then can a test say
// that something did not happen: nothing is left that could make it.
func waitDrainedAt(t *testing.T, base, token string) {
	t.Helper()
	waitDrainedWithin(t, base, token, 15*time.Second)
}

// waitDrainedWithin is waitDrainedAt with its own bound, for a daemon
// that must first take over what a dead replica held.
func waitDrainedWithin(t *testing.T, base, token string, within time.Duration) {
	t.Helper()
	var unevaluated, pending float64
	if !testwait.Within(within, func() bool {
		m := scrapeMetrics(t, base, token)
		var ok1, ok2 bool
		unevaluated, ok1 = m["livehook_events_unevaluated"]
		pending, ok2 = m["livehook_jobs_pending"]
		if !ok1 || !ok2 {
			t.Fatal("/metrics lacks livehook_events_unevaluated or livehook_jobs_pending")
		}
		return unevaluated == 0 && pending == 0
	}) {
		t.Fatalf("the daemon did not drain within %v: %v events unevaluated, %v deliveries pending", within, unevaluated, pending)
	}
}

func (d *testDaemon) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	return scrapeMetrics(t, d.admURL(""), d.cfg.hardening.adminToken)
}

// waitDrained: see waitDrainedAt.
func (d *testDaemon) waitDrained(t *testing.T) {
	t.Helper()
	waitDrainedAt(t, d.admURL(""), d.cfg.hardening.adminToken)
}

// eventDetail is what GET /api/events/{id} shows of an evaluated event's
// rules.
type eventDetail struct {
	Matched   []string `json:"matched"`
	Throttled []string `json:"throttled"`
}

// waitEvaluated waits until the daemon has evaluated event id (the API
// answers 404 before) and returns what it shows of it.
func (d *testDaemon) waitEvaluated(t *testing.T, id string) eventDetail {
	t.Helper()
	return waitEvaluatedAt(t, d.admURL(""), d.cfg.hardening.adminToken, id)
}

// waitEvaluatedAt is waitEvaluated for the daemon whose admin listener is
// at base.
func waitEvaluatedAt(t *testing.T, base, token, id string) eventDetail {
	t.Helper()
	const within = 10 * time.Second
	var status int
	var body []byte
	testwait.Within(within, func() bool {
		status, body = adminGet(t, base, token, "/api/events/"+id)
		return status != http.StatusNotFound // 404 until the event is evaluated
	})
	if status != http.StatusOK {
		t.Fatalf("GET /api/events/%s: %d %s; want the evaluated event within %v", id, status, body, within)
	}
	var ev eventDetail
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("GET /api/events/%s: %v", id, err)
	}
	return ev
}
