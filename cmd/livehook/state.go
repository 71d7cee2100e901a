package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/livehook/livehook/engine"
)

func stateCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("state", "state [RULE] [flags]\n\nWhat the rules over time remember, per key: counts against their\nthresholds, pending expectations with their deadlines, open sessions and\ndigest buckets, and each key's prev.", stderr)
	c := addAdminFlags(fs)
	key := fs.String("key", "", "only keys whose values, joined by / in the rule's by order, start with `PREFIX` (play.example.com/live/room42)")
	limit := fs.Int("limit", 100, "list at most `N` keys")
	asJSON := fs.Bool("json", false, "print the daemon's JSON")
	if err := parse(fs, args, adminEnv(getenv)); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return &exitError{code: 2, msg: "state: at most one rule name"}
	}
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	if fs.NArg() == 1 {
		q.Set("rule", fs.Arg(0))
	}
	if *key != "" {
		q.Set("key", *key)
	}
	var out struct{ State []engine.StateReport }
	if err := c.call(ctx, http.MethodGet, "/api/state?"+q.Encode(), &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	if len(out.State) == 0 {
		fmt.Fprintln(stdout, "no state")
		return nil
	}
	for _, s := range out.State {
		fmt.Fprintf(stdout, "%-24s %-40s %s\n", s.Rule, keyText(s.Key), stateText(s))
	}
	return nil
}

func keyText(k map[string]string) string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + k[n]
	}
	return strings.Join(parts, " ")
}

func stateText(s engine.StateReport) string {
	var parts []string
	switch s.Block {
	case "count":
		parts = append(parts, fmt.Sprintf("count %d/%d in %s", s.Count, s.Threshold, s.Window))
	case "expect":
		if s.Due != nil {
			parts = append(parts, "expecting until "+s.Due.Format(time.RFC3339))
		}
	case "session", "digest":
		parts = append(parts, fmt.Sprintf("%s of %d", s.Block, s.Count))
		if s.Due != nil {
			parts = append(parts, "closes "+s.Due.Format(time.RFC3339))
		}
	}
	if s.Prev != nil {
		parts = append(parts, "prev "+s.Prev.ID)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
