// Package intake is livehook's public HTTP face: Aliyun Live recording
// callbacks on /callbacks/record and generic JSON events on
// /events/{source}. It validates, hands the event on, and answers at once;
// rules run after the reply.
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
)

// DefaultMaxBody bounds a request body. Aliyun's callbacks are a few
// hundred bytes.
const DefaultMaxBody = 64 << 10

// Acceptor takes a valid event and returns its id. dedupeKey identifies
// the sender's retries of one event (see event.DedupeKey): a retry gets
// the first one's id. Any error means the event was not taken; the caller
// is told to retry.
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
}

type handler struct {
	opts     Options
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
	sources  labelLimiter
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
	var source string
	var decode func([]byte) (*event.Event, error)
	switch {
	case r.URL.Path == "/callbacks/record":
		source, decode = event.SourceRecord, event.DecodeRecord
	case strings.HasPrefix(r.URL.Path, "/events/"):
		source = strings.TrimPrefix(r.URL.Path, "/events/")
		if !event.ValidSource(source) || source == event.SourceRecord {
			h.refuse(w, "invalid", "bad_source", http.StatusNotFound,
				"unknown source: a source name is 1-64 letters, digits, '_', '.' or '-' (and not "+event.SourceRecord+")")
			return
		}
		decode = func(b []byte) (*event.Event, error) { return event.DecodeGeneric(source, b) }
	default:
		h.refuse(w, "none", "not_found", http.StatusNotFound, "not found: POST callbacks to /callbacks/record or /events/{source}")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, source, "method", http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
		return
	}
	g, ok := h.admit(w, r, source) // limits, source policy, credentials: before the body is read
	if !ok {
		return
	}
	defer g.release()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		h.readFailed(w, source, err)
		return
	}
	if !h.verifyBody(w, r, source, g, body) {
		return
	}
	ev, err := decode(body)
	if err != nil {
		reason := "invalid"
		var de *event.DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		h.refuse(w, source, reason, http.StatusBadRequest, err.Error())
		return
	}
	ev.ReceivedAt = h.opts.Now().UTC()
	key := event.DedupeKey(ev, body, r.Header.Get("ALI-LIVE-TIMESTAMP"), r.Header.Get("webhook-id"))
	id, err := h.opts.Acceptor.Accept(r.Context(), ev, key)
	if err != nil {
		h.opts.Logger.Error("event not accepted", "source", source, "err", err)
		h.refuse(w, source, "unavailable", http.StatusServiceUnavailable, "cannot take the event now; retry later")
		return
	}
	h.received.WithLabelValues(h.sources.label(source)).Inc()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "id": id})
}

func (h *handler) refuse(w http.ResponseWriter, source, reason string, status int, msg string) {
	h.rejected.WithLabelValues(h.sources.label(source), reason).Inc()
	h.opts.Logger.Debug("request refused", "source", source, "reason", reason, "status", status, "err", msg)
	writeJSON(w, status, map[string]any{"ok": false, "error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}

func byteSize(n int64) string {
	if n%1024 == 0 {
		return strconv.FormatInt(n/1024, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// labelLimiter keeps a metric's source label from growing without bound:
// anyone can post to /events/<anything>.
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
