// Package identity tells a sender's retries of one callback from a new
// callback, for the sources whose callbacks carry no id of their own.
package identity

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/livehook/livehook/engine/sourceapi"
)

// Body is the identity of a callback whose retries repeat its body and,
// when the sender signs them, the timestamp header ts: two genuine
// callbacks can have equal bodies, but not equal bodies and timestamps.
func Body(kind string, r *sourceapi.Request, ts string) string {
	sum := sha256.Sum256(r.Body)
	return sourceapi.Key(kind, hex.EncodeToString(sum[:]), r.Header.Get(ts))
}

// Query is Body for a callback that carries its content in the query. The
// query is taken whole, its parameters in sorted order, so a retry matches
// however a proxy reorders them.
func Query(kind string, r *sourceapi.Request, ts string) string {
	sum := sha256.Sum256([]byte(r.Query.Encode()))
	return sourceapi.Key(kind, hex.EncodeToString(sum[:]), r.Header.Get(ts))
}
