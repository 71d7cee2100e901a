package admin

import (
	"net/http"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/secret"
)

// RequireToken wraps h so that every request carries
// "Authorization: Bearer <token>", except the probes /healthz and /readyz,
// which tell nothing and which orchestrators call without credentials.
func RequireToken(h http.Handler, token string) http.Handler {
	v := auth.NewBearer([]secret.Secret{secret.New(token)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			h.ServeHTTP(w, r)
			return
		}
		if err := v.Verify(r.Header, nil, time.Time{}); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="livehook admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "unauthorized: " + err.Error()})
			return
		}
		h.ServeHTTP(w, r)
	})
}
