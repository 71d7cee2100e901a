package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/secret"
)

// sessionCookie holds a browser's console session once it has given the
// token on /login: browsers cannot send a bearer header of their own.
const sessionCookie = "livehook_session"

// RequireToken wraps h so that every request carries
// "Authorization: Bearer <token>", or the session cookie /login sets,
// except the probes /healthz and /readyz, which tell nothing and which
// orchestrators call without credentials.
func RequireToken(h http.Handler, token string) http.Handler {
	v := auth.NewBearer([]secret.Secret{secret.New(token)})
	// The session is the token's HMAC under a key of this process: the
	// cookie never holds the token, and a restart ends every session.
	mac := hmac.New(sha256.New, []byte(rand.Text()))
	mac.Write([]byte(token))
	session := hex.EncodeToString(mac.Sum(nil))
	login := http.NewCrossOriginProtection().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		hdr := http.Header{"Authorization": {"Bearer " + r.PostFormValue("token")}}
		if err := v.Verify(hdr, nil, time.Time{}); err != nil {
			loginPage(w, http.StatusUnauthorized, "That is not the admin token.")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: session, Path: "/", HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz" || r.URL.Path == "/readyz":
			h.ServeHTTP(w, r)
			return
		case r.URL.Path == "/login" && r.Method == http.MethodPost:
			login.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(sessionCookie); err == nil && hmac.Equal([]byte(c.Value), []byte(session)) {
			h.ServeHTTP(w, r)
			return
		}
		err := v.Verify(r.Header, nil, time.Time{})
		if err == nil {
			h.ServeHTTP(w, r)
			return
		}
		if browser(r) {
			loginPage(w, http.StatusUnauthorized, "")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="livehook admin"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "unauthorized: " + err.Error()})
	})
}

// browser tells a person's page view from an API client: only the first
// is offered the login form.
func browser(r *http.Request) bool {
	return r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// loginPage asks for the admin token. It is plain HTML with no script or
// style, so it needs none of the console's assets, which sit behind it.
func loginPage(w http.ResponseWriter, status int, problem string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if problem != "" {
		problem = `<p role="alert">` + problem + `</p>`
	}
	_, _ = fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Log in · livehook</title></head>
<body><main><h1>livehook console</h1>%s
<form method="post" action="/login"><label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label> <button type="submit">Log in</button></form>
</main></body></html>
`, problem) // problem is one of this file's constants, never the request's
}
