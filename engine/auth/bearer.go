package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/secret"
)

// Bearer verifies an `Authorization: Bearer <token>` header.
type Bearer struct {
	// Digests, not tokens: comparing fixed-size digests in constant time
	// reveals nothing, not even a token's length.
	sums [][sha256.Size]byte
}

// NewBearer returns a verifier accepting any of tokens.
func NewBearer(tokens []secret.Secret) *Bearer {
	b := &Bearer{}
	for _, t := range tokens {
		b.sums = append(b.sums, sha256.Sum256([]byte(t.Reveal())))
	}
	return b
}

// Method implements Verifier.
func (b *Bearer) Method() string { return "bearer" }

// BodySigned implements Verifier.
func (b *Bearer) BodySigned() bool { return false }

// Verify implements Verifier.
func (b *Bearer) Verify(h http.Header, _ []byte, _ time.Time) error {
	v := h.Get("Authorization")
	if v == "" {
		return fail(ReasonMissing, "missing Authorization header: this source requires a bearer token")
	}
	scheme, token, ok := strings.Cut(v, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return fail(ReasonMalformed, "Authorization: want Bearer <token>")
	}
	got := sha256.Sum256([]byte(token))
	match := 0
	for _, want := range b.sums {
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	if match != 1 {
		return fail(ReasonMismatch, "the bearer token does not match")
	}
	return nil
}
