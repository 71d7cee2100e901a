package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a fake Standard Webhooks consumer. With a secret it verifies
// every request the way the spec's reference libraries do, with its own
// copy of the secret, and answers 401 when verification fails; then it
// plays its scripted replies in order, and 200 once they run out.
type receiver struct {
	secret  string
	srv     *httptest.Server
	release chan struct{} // ends hanging handlers

	mu      sync.Mutex
	replies []reply
	got     []request
}

type reply struct {
	status int
	header map[string]string
	body   string
	hang   bool // never answer
}

type request struct {
	method, path, query string
	header              http.Header
	body                []byte
	at                  time.Time
	verifyErr           error // why the signature was refused
}

func newReceiver(t *testing.T, secret string, replies ...reply) *receiver {
	rc := &receiver{secret: secret, replies: replies, release: make(chan struct{})}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	t.Cleanup(func() { close(rc.release) }) // runs first: unblocks hangs
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := request{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: body, at: time.Now()}
	if rc.secret != "" {
		req.verifyErr = verify(rc.secret, r.Header, body, time.Now())
	}
	rc.mu.Lock()
	rc.got = append(rc.got, req)
	next := reply{status: http.StatusOK, body: "ok"}
	if req.verifyErr == nil && len(rc.replies) > 0 {
		next, rc.replies = rc.replies[0], rc.replies[1:]
	}
	rc.mu.Unlock()

	if req.verifyErr != nil {
		http.Error(w, "invalid signature: "+req.verifyErr.Error(), http.StatusUnauthorized)
		return
	}
	if next.hang {
		select {
		case <-r.Context().Done():
		case <-rc.release:
		}
		return
	}
	for k, v := range next.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(next.status)
	io.WriteString(w, next.body)
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

// tolerance is how far webhook-timestamp may be from the receiver's clock.
const tolerance = 5 * time.Minute

// verify checks a Standard Webhooks signature independently of the code
// under test.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	id := h.Get("webhook-id")
	if id == "" {
		return errors.New("missing webhook-id")
	}
	ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil {
		return errors.New("missing or malformed webhook-timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp %d is outside the tolerance", ts)
	}
	key := []byte(secret)
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if key, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return err
		}
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	// The header may carry several space-separated signatures (rotation).
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		version, b64, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature found")
}
