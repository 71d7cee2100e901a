package intake_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/internal/intake"
	_ "github.com/livehook/livehook/sources/all" // the other tests call the daemon's own routes
)

// keyAcceptor records the dedupe key of each event.
type keyAcceptor struct {
	mu   sync.Mutex
	keys []string
}

func (a *keyAcceptor) Accept(_ context.Context, ev *event.Event, key string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys = append(a.keys, ev.Source+" "+ev.Stream+" "+key)
	return "ev-" + ev.Stream, nil
}

// TestRoutesComeFromTheRegistry: a source is mounted, decoded, identified
// and answered by its descriptor alone, as a GET with a query would be.
func TestRoutesComeFromTheRegistry(t *testing.T) {
	reg := sourceapi.NewRegistry()
	for _, s := range []sourceapi.Source{{
		Name: "probe", Doc: "probes", Path: "/probe", Methods: []string{http.MethodGet, http.MethodPost},
		Decode: func(r *sourceapi.Request) (*event.Event, error) {
			if r.Query.Get("stream") == "" {
				return nil, &event.DecodeError{Reason: "missing_field", Msg: "no stream in the query"}
			}
			return &event.Event{Source: r.Name, Kind: "probe", Stream: r.Query.Get("stream")}, nil
		},
		Identity: func(r *sourceapi.Request, _ *event.Event) string {
			return sourceapi.Key("probe", r.Query.Get("n"), r.Header.Get("X-Try"))
		},
		Reply: func(ev *event.Event, id string) any { return map[string]any{"Seen": ev.Stream, "Ref": id} },
	}, {
		Name: "fam", Doc: "family events", Path: "/f/{source}", Methods: []string{http.MethodPost},
		Decode: func(r *sourceapi.Request) (*event.Event, error) { return event.DecodeGeneric(r.Name, r.Body) },
	}} {
		if err := reg.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	acc := &keyAcceptor{}
	srv := httptest.NewServer(intake.New(intake.Options{Acceptor: acc, Sources: reg, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	do := func(method, path string, header http.Header, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var reply map[string]any
		if err := json.Unmarshal(b, &reply); err != nil {
			t.Fatalf("%s %s: reply is not JSON: %q", method, path, b)
		}
		return resp.StatusCode, resp.Header, reply
	}

	if status, _, reply := do("GET", "/probe?stream=s1&n=7", http.Header{"X-Try": {"a"}}, ""); status != 200 || reply["Seen"] != "s1" || reply["Ref"] != "ev-s1" {
		t.Errorf("GET with a query: %d %v, want 200 with the source's own answer", status, reply)
	}
	if status, _, reply := do("POST", "/f/cam", nil, `{"stream":"s2"}`); status != 200 || reply["ok"] != true || reply["id"] != "ev-s2" {
		t.Errorf("family: %d %v, want the default answer", status, reply)
	}
	if got, want := strings.Join(acc.keys, "|"), "probe s1 "+sourceapi.Key("probe", "7", "a")+"|cam s2 "; got != want {
		t.Errorf("acceptor got %q, want %q", got, want)
	}
	for _, tt := range []struct {
		method, path string
		status       int
		allow, error string
	}{
		{"GET", "/probe", 400, "", "no stream in the query"},
		{"DELETE", "/probe?stream=s", 405, "GET, POST", "method DELETE not allowed: use GET or POST"},
		{"GET", "/f/cam", 405, "POST", "method GET not allowed: use POST"},
		{"POST", "/f/probe", 404, "", "unknown source: a source name is 1-64 letters, digits, '_', '.' or '-' (and not probe)"},
		{"POST", "/events/cam", 404, "", "not found: POST callbacks to /f/{source}; GET/POST callbacks to /probe"},
	} {
		status, header, reply := do(tt.method, tt.path, nil, "")
		if status != tt.status || header.Get("Allow") != tt.allow || reply["error"] != tt.error {
			t.Errorf("%s %s: %d Allow %q %v, want %d Allow %q %q", tt.method, tt.path, status, header.Get("Allow"), reply, tt.status, tt.allow, tt.error)
		}
	}
	if len(acc.keys) != 2 {
		t.Errorf("refused requests reached the acceptor: %q", acc.keys)
	}
}
