// Package intake is livehook's public HTTP face: it mounts the route of
// every registered source (see engine/sourceapi), admits and decodes each
// callback, hands the event on, and answers at once; rules run after the
// reply.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
)

// DefaultMaxBody bounds a request body. Aliyun's callbacks are a few
// hundred bytes.
const DefaultMaxBody = 64 << 10

// Acceptor takes a valid event and returns its id. dedupeKey identifies
// the sender's retries of one event (see sourceapi.Source.Identity): a retry
// gets the first one's id. Any error means the event was not taken; the
// caller is told to retry.
type Acceptor interface {
	Accept(ctx context.Context, ev *event.Event, dedupeKey string) (string, error)
}

// Options configure the handler.
type Options struct {
	Acceptor Acceptor
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	MaxBody  int64 // default DefaultMaxBody
	Now      func() time.Time
	Policies Policies // per-source admission from the rules; nil admits every source
	Limits   Limits
	Sources  *sourceapi.Registry // the routes mounted; default sourceapi.Default()
}

type handler struct {
	opts     Options
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
	sources  labelLimiter
	// Answers to paths that name no source, made once from the registry.
	notFound, badName string
	// Admission; see limits.go and auth.go.
	authFailures *prometheus.CounterVec
	authLog      logLimiter
	slots        chan struct{} // one per request in progress; nil if uncapped
	perIP        *ipLimiter    // nil without a per-IP rate
}

// New returns the intake handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sources == nil {
		o.Sources = sourceapi.Default()
	}
	h := &handler{
		opts: o,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_events_received_total", Help: "Events accepted, by source.",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_events_rejected_total", Help: "Requests refused, by source and reason.",
		}, []string{"source", "reason"}),
		sources: labelLimiter{max: 100, seen: map[string]bool{}},
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livehook_auth_failures_total", Help: "Requests refused for their credentials or address, by source and reason.",
		}, []string{"source", "reason"}),
	}
	h.notFound, h.badName = routeErrors(o.Sources)
	if o.Limits.MaxConcurrent > 0 {
		h.slots = make(chan struct{}, o.Limits.MaxConcurrent)
	}
	if o.Limits.RatePerIP > 0 {
		h.perIP = newIPLimiter(o.Limits.RatePerIP, o.Limits.RateBurst)
	}
	if o.Metrics != nil {
		o.Metrics.MustRegister(h.received, h.rejected, h.authFailures)
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src, name, ok := h.opts.Sources.Route(r.URL.Path)
	switch {
	case src == nil:
		h.refuse(w, "none", "not_found", http.StatusNotFound, h.notFound)
		return
	case !ok:
		h.refuse(w, "invalid", "bad_source", http.StatusNotFound, h.badName)
		return
	case !src.Allows(r.Method):
		w.Header().Set("Allow", strings.Join(src.Methods, ", "))
		h.refuse(w, name, "method", http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use "+strings.Join(src.Methods, " or "))
		return
	}
	g, ok := h.admit(w, r, name) // limits, source policy, credentials: before the body is read
	if !ok {
		return
	}
	defer g.release()
	body, err := h.readBody(w, r)
	if err != nil {
		h.readFailed(w, name, err)
		return
	}
	if !h.verifyBody(w, r, name, g, body) {
		return
	}
	req := &sourceapi.Request{Name: name, Header: r.Header, Body: body}
	if r.URL.RawQuery != "" {
		req.Query = r.URL.Query()
	}
	ev, err := src.Decode(req)
	if err != nil {
		reason := "invalid"
		var de *event.DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		h.refuse(w, name, reason, http.StatusBadRequest, err.Error())
		return
	}
	ev.ReceivedAt = h.opts.Now().UTC()
	id, err := h.opts.Acceptor.Accept(r.Context(), ev, src.DedupeKey(req, ev))
	if err != nil {
		h.opts.Logger.Error("event not accepted", "source", name, "err", err)
		h.refuse(w, name, "unavailable", http.StatusServiceUnavailable, "cannot take the event now; retry later")
		return
	}
	h.received.WithLabelValues(h.sources.label(name)).Inc()
	writeJSON(w, http.StatusOK, src.Answer(ev, id))
}

// readBody reads the body whole, refusing more than MaxBody bytes. A body
// that gives its length, as Aliyun's do, is read into a buffer of that
// size: one allocation of what it needs instead of io.ReadAll's 512 bytes
// and up (net/http holds the body to its Content-Length).
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, h.opts.MaxBody)
	if n := r.ContentLength; n > 0 && n <= h.opts.MaxBody {
		b := make([]byte, n)
		if _, err := io.ReadFull(body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(body)
}

// routeErrors are the answers to a path that names no source, and to one
// under a family's prefix that names no source of it.
func routeErrors(reg *sourceapi.Registry) (notFound, badName string) {
	var methods []string // in order of first use
	paths := map[string][]string{}
	var taken []string
	for _, s := range reg.All() {
		m := strings.Join(s.Methods, "/")
		if paths[m] == nil {
			methods = append(methods, m)
		}
		paths[m] = append(paths[m], s.Path)
		if !s.Family() {
			taken = append(taken, s.Name)
		}
	}
	var routes []string
	for _, m := range methods {
		routes = append(routes, m+" callbacks to "+strings.Join(paths[m], " or "))
	}
	notFound = "not found"
	if len(routes) > 0 {
		notFound += ": " + strings.Join(routes, "; ")
	}
	badName = "unknown source: a source name is 1-64 letters, digits, '_', '.' or '-'"
	if len(taken) > 0 {
		badName += " (and not " + strings.Join(taken, ", ") + ")"
	}
	return notFound, badName
}

func (h *handler) refuse(w http.ResponseWriter, source, reason string, status int, msg string) {
	h.rejected.WithLabelValues(h.sources.label(source), reason).Inc()
	h.opts.Logger.Debug("request refused", "source", source, "reason", reason, "status", status, "err", msg)
	writeJSON(w, status, map[string]any{"ok": false, "error": msg})
}

// jsonType is every answer's Content-Type, one value for all: net/http
// only reads it.
var jsonType = []string{"application/json"}

// writeJSON writes v as json.Encoder writes it. The answer to an accept,
// on every callback, is written without reflection when its id needs no
// escaping (the engine's ids never do).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = jsonType
	w.WriteHeader(status)
	// The client may be gone; nothing to do about it.
	if a, ok := v.(sourceapi.Accepted); ok && a.OK && event.PlainJSON(a.ID) {
		_, _ = w.Write(append(append(append(make([]byte, 0, 64), `{"id":"`...), a.ID...), `","ok":true}`+"\n"...))
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

func byteSize(n int64) string {
	if n%1024 == 0 {
		return strconv.FormatInt(n/1024, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// labelLimiter keeps a metric's source label from growing without bound:
// callers name the sources of a family (/events/<anything>).
type labelLimiter struct {
	mu   sync.Mutex
	max  int
	seen map[string]bool
}

func (l *labelLimiter) label(source string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[source] {
		return source
	}
	if len(l.seen) >= l.max {
		return "other"
	}
	l.seen[source] = true
	return source
}
