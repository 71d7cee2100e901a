// Package admin serves livehook's operator endpoints: health, readiness,
// Prometheus metrics, reload, the loaded rules, and the history of events,
// deliveries and dead letters. It listens on loopback by default.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Reloader reloads the rules; the error carries every problem.
type Reloader interface{ Reload() error }

// Options configure the admin handler.
type Options struct {
	Reloader Reloader
	Rules    func() any  // what GET /api/rules shows; secrets already redacted
	Ready    func() bool // whether the daemon takes events
	Gatherer prometheus.Gatherer
	Events   Events // the event and dead-letter API; nil leaves it out
	// State lists the state of rules over time for GET /api/state: of one
	// rule or all, of the keys starting with key ("/" between values); nil
	// leaves it out.
	State func(rule, key string, limit int) (any, error)
	// Reconcile reads back, from Aliyun's records, the callbacks sent in
	// the last since (0: the configured look-back) that livehook never
	// received, for POST /api/reconcile?since=24h, and returns what it
	// found; a *BadRequest is the caller's to correct. nil leaves it out.
	Reconcile func(ctx context.Context, since time.Duration) (any, error)
	// Console serves the web console at every path the endpoints above
	// do not take, but /api/: an unknown API path stays a JSON 404. nil
	// leaves it out.
	Console http.Handler
	// ReadOnly refuses what changes anything (reload, replays,
	// reconcile) with 403; everything else is served.
	ReadOnly bool
	Logger   *slog.Logger
}

// BadRequest is an error the caller can correct: it is answered 400.
type BadRequest struct{ Err error }

func (e *BadRequest) Error() string { return e.Err.Error() }
func (e *BadRequest) Unwrap() error { return e.Err }

// New returns the admin handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	mux := http.NewServeMux()
	handle(mux, "GET", "/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	handle(mux, "GET", "/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil && !o.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": "not ready"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	handle(mux, "GET", "/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}).ServeHTTP)
	handle(mux, "POST", "/-/reload", o.change(func(w http.ResponseWriter, _ *http.Request) {
		if err := o.Reloader.Reload(); err != nil {
			o.Logger.Warn("reload requested over HTTP failed; previous rules kept")
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"ok": false, "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	}))
	handle(mux, "GET", "/api/rules", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, o.Rules())
	})
	if o.Events != nil {
		eventRoutes(mux, o.Events, o.change)
	}
	if o.State != nil {
		handle(mux, "GET", "/api/state", func(w http.ResponseWriter, r *http.Request) {
			limit, err := limitParam(r, 100)
			if err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			q := r.URL.Query()
			keys, err := o.State(q.Get("rule"), q.Get("key"), limit)
			reply(w, map[string]any{"state": keys}, err)
		})
	}
	if o.Reconcile != nil {
		handle(mux, "POST", "/api/reconcile", o.change(func(w http.ResponseWriter, r *http.Request) {
			var since time.Duration
			if v := r.URL.Query().Get("since"); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					writeError(w, http.StatusBadRequest, errors.New("since: want a positive duration such as 24h"))
					return
				}
				since = d
			}
			rep, err := o.Reconcile(r.Context(), since)
			reply(w, rep, err)
		}))
	}
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "not found: " + r.Method + " " + r.URL.Path})
	}
	if o.Console != nil {
		mux.HandleFunc("/api/", notFound)
		mux.Handle("/", o.Console)
	} else {
		mux.HandleFunc("/", notFound)
	}
	return mux
}

// change guards a handler that changes something: with ReadOnly it is
// refused.
func (o Options) change(h http.HandlerFunc) http.HandlerFunc {
	if !o.ReadOnly {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, errors.New("read-only: this admin listener changes nothing ("+r.Method+" "+r.URL.Path+")"))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client may be gone; nothing to do about it
}

// handle registers h for method on path, and a JSON 405 naming the method
// to use for any other: the catch-all "/" would otherwise answer 404, and
// tell an operator who typed `curl /-/reload` that the path does not exist.
func handle(mux *http.ServeMux, method, path string, h http.HandlerFunc) {
	mux.HandleFunc(method+" "+path, h)
	allow := method
	if method == http.MethodGet {
		allow += ", " + http.MethodHead
	}
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"ok": false,
			"error": "method not allowed: " + r.Method + " " + r.URL.Path + " (use " + method + ")"})
	})
}
