package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/internal/subprocess"
	"github.com/livehook/livehook/internal/textcut"
	"github.com/livehook/livehook/plugins/protocol"
)

// stderrKeep is how much of a run's stderr reaches the log, from its start
// and from its end each.
const stderrKeep = 4 << 10

// run is one run of a plugin's command.
type run struct {
	resp      protocol.Response
	invalid   error  // why stdout is not a valid answer
	stdoutTop string // the start of an invalid answer, for the message
	state     string // how the process ended: "exit status 2", "signal: killed"
	stderr    string
	startErr  error
	timedOut  bool
	cancelled bool // the daemon gave up on the delivery (shutdown)
	overflow  bool
}

// exec runs the plugin once: req on its stdin, in its own process group,
// with only the allowed environment. The group is killed at the timeout,
// when stdout overflows, when ctx ends, and in any case once the plugin's
// own process has exited, so nothing it started outlives the delivery.
func (p *Plugin) exec(ctx context.Context, req []byte, timeout time.Duration) run {
	stdout := &subprocess.Head{Max: protocol.MaxResponse}
	stderr := &subprocess.HeadTail{Size: stderrKeep}
	ran, err := subprocess.Run(ctx, subprocess.Command{
		Path: p.program, Args: p.Command[1:], Dir: p.Dir, Env: p.environ(), Stdin: req,
		Timeout: timeout, Stdout: stdout, Stderr: stderr, StopWhenStdoutFull: true,
	})
	if err != nil {
		return run{startErr: err}
	}
	r := run{
		state:     ran.Exit,
		stderr:    stderr.String(),
		timedOut:  ran.Killed == subprocess.Timeout,
		cancelled: ran.Killed == subprocess.Cancelled,
		overflow:  stdout.Full(),
	}
	if !r.overflow {
		out := stdout.Bytes()
		r.resp, r.invalid = protocol.DecodeResponse(out)
		if r.invalid != nil {
			r.stdoutTop = string(out[:min(len(out), 4<<10)])
		}
	}
	return r
}

// environ is the plugin's whole environment: the allowed variables that
// the daemon has, and nothing else.
func (p *Plugin) environ() []string {
	var env []string
	for _, name := range p.Env {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// result classifies a run. A valid answer decides, however the process
// ended. Without one the delivery is retryable: the plugin has not said
// whether retrying can help, the usual causes (a network call that failed
// in a script, an out-of-memory kill, a hang) pass, and the retry policy
// bounds what a plugin that always fails can cost. Only a plugin that
// cannot be started at all is a permanent failure.
//
// hide removes secrets from what the plugin wrote. It runs before any
// excerpt is cut, so a secret split at the cut cannot leave a prefix.
func (r run) result(timeout time.Duration, hide func(string) string) actionapi.Result {
	if r.startErr != nil {
		return actionapi.Failed(actionapi.Permanent, fmt.Errorf("cannot start the plugin: %w", r.startErr))
	}
	if r.overflow {
		return retryable("its answer exceeded %d bytes; killed it", protocol.MaxResponse)
	}
	if r.answered() {
		res := actionapi.Result{Outcome: outcomes[r.resp.Outcome], Detail: r.resp.Detail, IDs: r.resp.IDs,
			RetryAfter: time.Duration(min(r.resp.RetryAfter, protocol.MaxRetryAfter) * float64(time.Second))}
		if res.Outcome != actionapi.Delivered {
			res.Err = fmt.Errorf("%s", res.Detail)
		}
		return res
	}
	var why string
	switch {
	case r.timedOut:
		why = fmt.Sprintf("no answer within %s; killed its process group", timeout)
	case r.cancelled:
		why = "livehook stopped waiting (shutting down); killed its process group"
	case errors.Is(r.invalid, protocol.ErrNoAnswer):
		why = r.state + " without an answer"
	default:
		why = fmt.Sprintf("%s; %v", r.state, r.invalid)
		if r.stdoutTop != "" {
			why += fmt.Sprintf(" (stdout began %q)", textcut.Truncate(hide(r.stdoutTop), 80))
		}
	}
	if line := lastLine(hide(r.stderr)); line != "" {
		why += "; stderr: " + textcut.Truncate(line, 200)
	}
	return retryable("%s", why)
}

// answered reports whether the run gave a valid answer.
func (r run) answered() bool { return r.startErr == nil && !r.overflow && r.invalid == nil }

var outcomes = map[protocol.Outcome]actionapi.Outcome{
	protocol.Delivered: actionapi.Delivered,
	protocol.Retryable: actionapi.Retryable,
	protocol.Permanent: actionapi.Permanent,
}

func retryable(format string, args ...any) actionapi.Result {
	return actionapi.Failed(actionapi.Retryable, fmt.Errorf(format, args...))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
