package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// Standard Webhooks (standardwebhooks.com) headers.
const (
	headerID        = "Webhook-Id"
	headerTimestamp = "Webhook-Timestamp"
	headerSignature = "Webhook-Signature"
)

// secretPrefix marks a Standard Webhooks secret: the key is the base64
// text after it. Any other secret is used as raw bytes.
const secretPrefix = "whsec_"

// signingKey derives the HMAC key from the `secret` setting. Its errors
// never quote the secret.
func signingKey(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return []byte(s), nil
	}
	// Accept the key with or without base64 padding.
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil {
		return nil, errors.New("secret: the part after whsec_ is not valid base64")
	}
	if len(key) == 0 {
		return nil, errors.New("secret: empty key after whsec_")
	}
	return key, nil
}

// signature is the Standard Webhooks v1 signature of one message:
// base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
func signature(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}
