package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestReconcileRoute(t *testing.T) {
	var asked []time.Duration
	h := New(Options{Reconcile: func(_ context.Context, since time.Duration) (any, error) {
		asked = append(asked, since)
		switch since {
		case 200 * time.Hour:
			return nil, &BadRequest{Err: errors.New("look back 200h0m0s: Aliyun keeps 7 days (168h) of records")}
		case time.Hour:
			return nil, errors.New("read the events livehook has: bolt: database not open")
		}
		return map[string]any{"reconciled": 2}, nil
	}})
	for _, tt := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"POST", "/api/reconcile?since=24h", http.StatusOK, `{"reconciled": 2}`},
		{"POST", "/api/reconcile", http.StatusOK, `{"reconciled": 2}`},
		{"POST", "/api/reconcile?since=200h", http.StatusBadRequest, `{"ok": false, "error": "look back 200h0m0s: Aliyun keeps 7 days (168h) of records"}`},
		{"POST", "/api/reconcile?since=1h", http.StatusServiceUnavailable, `{"ok": false, "error": "read the events livehook has: bolt: database not open"}`},
		{"POST", "/api/reconcile?since=yesterday", http.StatusBadRequest, `{"ok": false, "error": "since: want a positive duration such as 24h"}`},
		{"POST", "/api/reconcile?since=-1h", http.StatusBadRequest, `{"ok": false, "error": "since: want a positive duration such as 24h"}`},
		{"GET", "/api/reconcile", http.StatusMethodNotAllowed, `{"ok": false, "error": "method not allowed: GET /api/reconcile (use POST)"}`},
	} {
		resp, body := do(t, h, tt.method, tt.path, "")
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
			continue
		}
		checkJSON(t, resp.Header.Get("Content-Type"), body, tt.body)
	}
	if want := []time.Duration{24 * time.Hour, 0, 200 * time.Hour, time.Hour}; !slices.Equal(asked, want) {
		t.Errorf("asked %v, want %v", asked, want)
	}
	if resp, _ := do(t, New(Options{}), "POST", "/api/reconcile", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("without a sweeper: %d, want 404", resp.StatusCode)
	}
}
