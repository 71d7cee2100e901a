// Command livehook receives Aliyun ApsaraVideo Live recording callbacks and
// other JSON events, evaluates YAML rules against them and runs actions.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	_ "github.com/livehook/livehook/actions/all" // every built-in action type
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

const usage = `livehook: rules-driven automation for Aliyun ApsaraVideo Live callbacks.

Usage:
  livehook serve [flags]              run the daemon
  livehook check PATH                 validate a rules file or directory
  livehook test [flags] RULES EVENT.json|TESTFILE|DIR...
                                      show which rules match each event and what
                                      every action would send, or run rule tests:
                                      timelines on a virtual clock (sends nothing)
  livehook send [--url URL] EVENT.json
                                      POST an event file to a running daemon
  livehook send-test [--rules PATH] ACTION
                                      send one test message through an action, for real
  livehook events [list|show ID|replay ID]
                                      what happened to recent events, from a running daemon
  livehook deadletters [list|replay ID|replay --all]
                                      deliveries that failed for good, and replaying them
  livehook reconcile [--since 24h]    add the callbacks Aliyun sent that the
                                      daemon never received (rules' sweeper:)
  livehook state [RULE] [--key PREFIX]
                                      what the rules over time remember, per key
  livehook migrate --store DSN        bring a shared PostgreSQL store's schema
                                      to this version, as serve does at start
  livehook actions [--plugins DIR]     list the action types rules can use, plugins included
  livehook version                    print the version

Run 'livehook COMMAND --help' for a command's flags. Every serve flag can
also be set through an environment variable: --listen is LIVEHOOK_LISTEN.
`

// exitError carries a process exit code up to main.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if err.Error() != "" {
		fmt.Fprintln(os.Stderr, "livehook:", err)
	}
	os.Exit(code)
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serveCmd(ctx, rest, stderr, getenv)
	case "check":
		return checkCmd(rest, stdout, stderr, getenv)
	case "test":
		return testCmd(rest, stdout, stderr, getenv)
	case "send-test":
		return sendTestCmd(ctx, rest, stdout, stderr, getenv)
	case "send":
		return sendCmd(ctx, rest, stdout, stderr, getenv)
	case "migrate":
		return migrateCmd(ctx, rest, stdout, stderr, getenv)
	case "actions":
		return actionsCmd(rest, stdout, stderr, getenv)
	case "events":
		return eventsCmd(ctx, rest, stdout, stderr, getenv)
	case "deadletters":
		return deadlettersCmd(ctx, rest, stdout, stderr, getenv)
	case "state":
		return stateCmd(ctx, rest, stdout, stderr, getenv)
	case "reconcile":
		return reconcileCmd(ctx, rest, stdout, stderr, getenv)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "livehook", versionString())
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exitError{code: 2, msg: fmt.Sprintf("unknown command %q", cmd)}
}

func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
