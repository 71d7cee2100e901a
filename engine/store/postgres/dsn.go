package postgres

import (
	"errors"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// IsDSN reports whether s names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a directory.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redact returns dsn fit to show: its password, and any other parameter
// that may carry a secret, replaced by ****. What cannot be parsed is
// shown as postgres://****.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || !IsDSN(dsn) {
		return "postgres://****"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "****")
		}
	}
	q := u.Query()
	for k := range q {
		if secretParam(k) {
			q.Set(k, "****")
		}
	}
	u.RawQuery = q.Encode()
	// url.String would escape the stars.
	out := strings.ReplaceAll(u.String(), "%2A%2A%2A%2A", "****")
	if _, err := url.Parse(out); err != nil {
		return "postgres://****" // what would not read back is shown as nothing
	}
	return out
}

func secretParam(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "password") || k == "sslkey" || strings.Contains(k, "secret")
}

// parseDSN parses dsn into a pool configuration. Its error never quotes
// dsn: pgx's own redacts the password but not every secret a DSN can
// hold, and the caller may log it.
func parseDSN(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("parse the store DSN " + Redact(dsn) + ": " + scrub(err.Error(), dsn))
	}
	return cfg, nil
}

// secrets of a DSN: its password and secret parameters, as written.
func secrets(dsn string) []string {
	var out []string
	u, err := url.Parse(dsn)
	if err != nil {
		// Unparsable: the whole string may be the secret.
		return []string{dsn}
	}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	for k, vs := range u.Query() {
		if secretParam(k) {
			for _, v := range vs {
				if v != "" {
					out = append(out, v, url.QueryEscape(v))
				}
			}
		}
	}
	return out
}

// scrub replaces every secret of dsn in text.
func scrub(text, dsn string) string {
	for _, s := range secrets(dsn) {
		text = strings.ReplaceAll(text, s, "****")
	}
	return text
}

// scrubErr returns err with dsn's secrets removed from its text; the
// result then wraps nothing, so no unwrapping finds them either.
func scrubErr(err error, dsn string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := scrub(msg, dsn); clean != msg {
		return errors.New(clean)
	}
	return err
}
