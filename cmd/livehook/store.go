package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/postgres"
)

// storeFlagUsage is --store's help, for serve and migrate alike.
const storeFlagUsage = "`DSN` of a PostgreSQL database to share with other replicas, postgres://user:password@host:5432/db " +
	"(add ?search_path=SCHEMA for a schema of its own, pool_max_conns=N for the pool's size); a secret: never logged or shown. " +
	"Default: the embedded store in --data (env LIVEHOOK_STORE)"

// openTimeout bounds connecting to a shared store and migrating its
// schema at start.
const openTimeout = 30 * time.Second

// openStore opens the store serve runs on: PostgreSQL when --store names
// one, the embedded store in --data otherwise.
func openStore(c serveConfig, reg prometheus.Registerer) (store.Store, error) {
	if c.store == "" {
		return store.Open(c.data, store.Options{OnCommit: engine.CommitObserver(reg)})
	}
	if !postgres.IsDSN(c.store) {
		return nil, &exitError{code: 2, msg: "serve: --store: want a postgres:// URL"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	st, err := postgres.Open(ctx, c.store, postgres.Options{})
	if err != nil {
		return nil, err // postgres.Open's errors carry no secret
	}
	return st, nil
}

// storeName is the store as the log may show it.
func storeName(c serveConfig) string {
	if c.store == "" {
		return "embedded " + c.data
	}
	return postgres.Redact(c.store)
}

// storeReady reports whether the store can take events now: a shared
// store whose database does not answer cannot, and the load balancer
// should send elsewhere.
func storeReady(st store.Store) func() bool {
	r, ok := st.(interface{ Ready(context.Context) bool })
	if !ok {
		return func() bool { return true }
	}
	return func() bool {
		// Under a probe's usual one-second timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
		defer cancel()
		return r.Ready(ctx)
	}
}

// migrateCmd brings a shared store's schema to this build's version, as
// serve does at start, for operators who migrate before rolling out.
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	var dsn string
	fs := newFlagSet("migrate", "migrate --store DSN", stderr)
	fs.StringVar(&dsn, "store", "", storeFlagUsage)
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("migrate: unexpected argument %q", fs.Arg(0))}
	}
	if !postgres.IsDSN(dsn) {
		return &exitError{code: 2, msg: "migrate: --store: want a postgres:// URL (the embedded store needs no migration)"}
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	v, err := postgres.Migrate(ctx, dsn)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: schema at version %d\n", postgres.Redact(dsn), v)
	return nil
}
