package admin

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/livehook/livehook/engine/store"
)

// Events is what the event and dead-letter endpoints need.
type Events interface {
	Events(f store.EventFilter) ([]*store.EventRecord, error)
	Event(id string) (*store.EventDetail, error)
	DeadLetters(f store.DeadFilter) ([]*store.Job, error)
	ReplayDeadLetter(id string) (*store.Job, error)
	ReplayEvent(id string) ([]*store.Job, error)
}

// maxLimit bounds one listing.
const maxLimit = 1000

func eventRoutes(mux *http.ServeMux, ev Events, change func(http.HandlerFunc) http.HandlerFunc) {
	handle(mux, "GET", "/api/events", func(w http.ResponseWriter, r *http.Request) {
		f, err := store.ParseEventQuery(r.URL.Query(), 50)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		list, err := ev.Events(f)
		out := map[string]any{"events": orEmpty(list)}
		if len(list) == f.Limit { // a full page: the next one starts after its last
			out["next"] = list[len(list)-1].Event.ID
		}
		reply(w, out, err)
	})
	handle(mux, "GET", "/api/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := ev.Event(r.PathValue("id"))
		reply(w, d, err)
	})
	handle(mux, "POST", "/api/events/{id}/replay", change(func(w http.ResponseWriter, r *http.Request) {
		jobs, err := ev.ReplayEvent(r.PathValue("id"))
		reply(w, map[string]any{"ok": true, "jobs": orEmpty(jobs)}, err)
	}))
	handle(mux, "GET", "/api/deadletters", func(w http.ResponseWriter, r *http.Request) {
		limit, err := limitParam(r, 100)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		q := r.URL.Query()
		list, err := ev.DeadLetters(store.DeadFilter{Limit: limit, Before: q.Get("before"), Action: q.Get("action")})
		reply(w, map[string]any{"deadletters": orEmpty(list)}, err)
	})
	handle(mux, "POST", "/api/deadletters/{id}/replay", change(func(w http.ResponseWriter, r *http.Request) {
		j, err := ev.ReplayDeadLetter(r.PathValue("id"))
		reply(w, map[string]any{"ok": true, "job": j}, err)
	}))
}

func limitParam(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > maxLimit {
		return 0, errors.New("limit: want a number from 1 to 1000")
	}
	return n, nil
}

// reply writes v, or err with the status it deserves.
func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, store.ErrNotDead):
		writeError(w, http.StatusConflict, err)
	case errors.As(err, new(*BadRequest)):
		writeError(w, http.StatusBadRequest, err)
	default:
		writeError(w, http.StatusServiceUnavailable, err)
	}
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]any{"ok": false, "error": err.Error()})
}

// orEmpty makes a nil list marshal as [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
