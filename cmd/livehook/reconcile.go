package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/hashicorp/go-cleanhttp"

	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/internal/admin"
	"github.com/livehook/livehook/internal/sweeper"
)

// reconcileTimeout bounds a sweep asked for from the command line: a
// week of a busy domain is many pages at ten calls a second.
const reconcileTimeout = 30 * time.Minute

func reconcileCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("reconcile", "reconcile [--since 24h] [flags]\n\nRead back from Aliyun Live's records the recording and stream callbacks\nsent in the last --since that the running daemon never received, and add\nthem marked reconciled. The domains and credentials are the rules'\nsweeper: settings.", stderr)
	c := addAdminFlags(fs)
	since := fs.Duration("since", 0, "how far back to look, at most 168h (default: the sweeper's look_back)")
	asJSON := fs.Bool("json", false, "print the daemon's JSON")
	if err := parse(fs, args, adminEnv(getenv)); err != nil {
		return err
	}
	if fs.NArg() > 0 || *since < 0 {
		fs.Usage()
		return &exitError{code: 2, msg: "reconcile: want only flags, and a positive --since"}
	}
	path := "/api/reconcile"
	if *since > 0 {
		path += "?" + url.Values{"since": {since.String()}}.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	var rep sweeper.Report
	if err := c.call(ctx, http.MethodPost, path, &rep); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	fmt.Fprintf(stdout, "callbacks sent %s to %s: %d (%d records), %d already received, %d reconciled, %d failed\n",
		rep.From.Format(time.RFC3339), rep.Until.Format(time.RFC3339), rep.Callbacks, rep.Records, rep.Skipped, rep.Reconciled, rep.Failed)
	names := make([]string, 0, len(rep.Sources))
	for name := range rep.Sources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := rep.Sources[name]
		fmt.Fprintf(stdout, "  %-20s %d callbacks, %d already received, %d reconciled, %d failed\n", name, s.Callbacks, s.Skipped, s.Reconciled, s.Failed)
	}
	for _, e := range rep.Errors {
		fmt.Fprintln(stdout, "  failed:", e)
	}
	if rep.EventID != "" {
		fmt.Fprintf(stdout, "reported as event %s; the reconciled events: livehook events list --source ...\n", rep.EventID)
	}
	if rep.Failed > 0 {
		return &exitError{code: 1, msg: ""}
	}
	return nil
}

// newSweeper is the daemon's sweeper: it reads the current rules'
// sweeper: on every sweep.
func (d *daemon) newSweeper() *sweeper.Sweeper {
	return sweeper.New(sweeper.Options{
		Engine:    d.engine,
		Config:    func() *rules.Sweeper { return d.engine.Rules().Sweeper },
		Retention: d.cfg.retention,
		Transport: cleanhttp.DefaultPooledTransport(),
		Logger:    d.log,
		Metrics:   d.registry,
	})
}

// reconcileFunc runs a sweep for POST /api/reconcile. It stops when the
// caller hangs up or the daemon shuts down, whichever is first; what it
// added by then stays added.
func reconcileFunc(daemonCtx context.Context, sw *sweeper.Sweeper) func(context.Context, time.Duration) (any, error) {
	return func(ctx context.Context, since time.Duration) (any, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(daemonCtx, cancel)
		defer stop()
		rep, err := sw.Sweep(ctx, since)
		var refusal *sweeper.Refusal
		if errors.As(err, &refusal) {
			return nil, &admin.BadRequest{Err: err}
		}
		if err != nil {
			return nil, err
		}
		return rep, nil
	}
}
