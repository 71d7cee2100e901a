package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/store"
)

// adminClient talks to a running daemon's admin listener.
type adminClient struct {
	base  string
	token string
}

func addAdminFlags(fs *flag.FlagSet) *adminClient {
	c := &adminClient{}
	fs.StringVar(&c.base, "admin", "http://127.0.0.1:9090", "the daemon's admin `URL` (env LIVEHOOK_ADMIN_URL)")
	fs.StringVar(&c.token, "token", "", "bearer token for an admin listener that requires one (env LIVEHOOK_ADMIN_TOKEN)")
	return c
}

// adminEnv maps the client flags to their variables: --admin means a URL
// here, not serve's listen address.
func adminEnv(getenv func(string) (string, bool)) func(string) (string, bool) {
	return func(name string) (string, bool) {
		switch name {
		case "LIVEHOOK_ADMIN":
			return getenv("LIVEHOOK_ADMIN_URL")
		case "LIVEHOOK_TOKEN":
			return getenv("LIVEHOOK_ADMIN_TOKEN")
		}
		return "", false
	}
}

// call sends a request and decodes a 200 reply into out; any other status
// becomes an error carrying the daemon's message.
func (c *adminClient) call(ctx context.Context, method, path string, out any) error {
	if _, ok := ctx.Deadline(); !ok { // a caller that expects a long answer sets its own
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.Unmarshal(body, out)
}

func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("events", "events [list] [flags] | events show ID | events replay ID\n\nWhat happened to recent events: list them (newest first), show one with\nevery delivery attempt, or evaluate one again against the current rules.", stderr)
	c := addAdminFlags(fs)
	limit := fs.Int("limit", 50, "list at most `N` events")
	filters := map[string]*string{
		"source":  fs.String("source", "", "list only events from this source"),
		"kind":    fs.String("kind", "", "list only events of this kind (file, status, ...)"),
		"stream":  fs.String("stream", "", "list only events whose stream starts with `PREFIX`"),
		"rule":    fs.String("rule", "", "list only events that matched this rule"),
		"outcome": fs.String("outcome", "", "list only events whose deliveries are delivered, pending, dead, none, or that were retried (duplicate)"),
		"from":    fs.String("from", "", "list only events accepted at or after `TIME` (RFC 3339, or UTC without a zone)"),
		"to":      fs.String("to", "", "list only events accepted before `TIME`"),
		"before":  fs.String("before", "", "list only events older than event `ID` (the next page)"),
	}
	asJSON := fs.Bool("json", false, "print the daemon's JSON")
	sub, rest := subcommand(args, "list")
	if err := parse(fs, rest, adminEnv(getenv)); err != nil {
		return err
	}
	switch {
	case sub == "list" && fs.NArg() == 0:
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		for k, v := range filters {
			if *v != "" {
				q.Set(k, *v)
			}
		}
		var out struct {
			Events []*store.EventRecord `json:"events"`
			Next   string               `json:"next,omitempty"`
		}
		if err := c.call(ctx, http.MethodGet, "/api/events?"+q.Encode(), &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, out)
		}
		for _, r := range out.Events {
			ev := r.Event
			stream := strings.Trim(ev.Domain+"/"+ev.App+"/"+ev.Stream, "/")
			dups := ""
			if r.Duplicates > 0 {
				dups = fmt.Sprintf("  duplicates: %d", r.Duplicates)
			}
			fmt.Fprintf(stdout, "%s  %s  %-20s %-7s %s  rules: %s  %s%s\n", ev.ID, ev.ReceivedAt.Format(time.RFC3339),
				ev.Source, ev.Kind, orDash(stream), orDash(strings.Join(r.Matched, ",")), orDash(r.Outcome), dups)
		}
		if out.Next != "" {
			fmt.Fprintf(stdout, "more: --before %s\n", out.Next)
		}
		return nil
	case sub == "show" && fs.NArg() == 1:
		var d store.EventDetail
		if err := c.call(ctx, http.MethodGet, "/api/events/"+url.PathEscape(fs.Arg(0)), &d); err != nil {
			return err
		}
		return printJSON(stdout, d)
	case sub == "replay" && fs.NArg() == 1:
		var out struct{ Jobs []*store.Job }
		if err := c.call(ctx, http.MethodPost, "/api/events/"+url.PathEscape(fs.Arg(0))+"/replay", &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed %s: %d deliveries scheduled\n", fs.Arg(0), len(out.Jobs))
		return nil
	}
	fs.Usage()
	return &exitError{code: 2, msg: "events: want list, show ID or replay ID"}
}

func deadlettersCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("deadletters", "deadletters [list] [flags] | deadletters replay ID | deadletters replay --all\n\nDeliveries that failed for good: list them, or run them again with a\nfresh allowance of attempts.", stderr)
	c := addAdminFlags(fs)
	limit := fs.Int("limit", 100, "list at most `N` dead letters")
	all := fs.Bool("all", false, "with replay: replay every dead letter")
	asJSON := fs.Bool("json", false, "print the daemon's JSON")
	sub, rest := subcommand(args, "list")
	if err := parse(fs, rest, adminEnv(getenv)); err != nil {
		return err
	}
	list := func(n int) ([]*store.Job, error) {
		var out struct{ Deadletters []*store.Job }
		err := c.call(ctx, http.MethodGet, fmt.Sprintf("/api/deadletters?limit=%d", n), &out)
		return out.Deadletters, err
	}
	replay := func(id string) error {
		var out struct{ Job *store.Job }
		if err := c.call(ctx, http.MethodPost, "/api/deadletters/"+url.PathEscape(id)+"/replay", &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed %s\n", id)
		return nil
	}
	switch {
	case sub == "list" && fs.NArg() == 0:
		jobs, err := list(*limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, map[string]any{"deadletters": jobs})
		}
		for _, j := range jobs {
			fmt.Fprintf(stdout, "%s  %s (%s)  %d attempt(s)  %s\n", j.ID, j.Action, j.Type, len(j.Attempts), j.LastError)
		}
		return nil
	case sub == "replay" && *all && fs.NArg() == 0:
		// Page until no dead letter is left that this run has not replayed:
		// one that dies again at once is not replayed twice.
		done := map[string]bool{}
		for {
			jobs, err := list(1000)
			if err != nil {
				return err
			}
			fresh := 0
			for _, j := range jobs {
				if done[j.ID] {
					continue
				}
				if err := replay(j.ID); err != nil {
					return err
				}
				done[j.ID] = true
				fresh++
			}
			if fresh == 0 {
				break
			}
		}
		fmt.Fprintf(stdout, "%d dead letter(s) replayed\n", len(done))
		return nil
	case sub == "replay" && !*all && fs.NArg() == 1:
		return replay(fs.Arg(0))
	}
	fs.Usage()
	return &exitError{code: 2, msg: "deadletters: want list, replay ID or replay --all"}
}

// subcommand splits an optional leading word off args.
func subcommand(args []string, def string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return def, args
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
