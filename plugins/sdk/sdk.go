// Package sdk makes a livehook plugin a short main: implement one Handler
// and call Serve.
//
//	func main() {
//		sdk.Serve(func(ctx context.Context, req *sdk.Request) sdk.Response {
//			var s struct{ URL string `json:"url"` }
//			if err := req.DecodeSettings(&s); err != nil {
//				return sdk.Permanent("settings: %v", err)
//			}
//			// ... call the service, within ctx's deadline ...
//			return sdk.Delivered("ok")
//		})
//	}
//
// Serve reads the request from stdin, gives the handler a context that
// ends shortly before livehook would kill the plugin, turns a panic into a
// permanent failure, and writes the response to stdout. Log to stderr:
// livehook copies it, bounded, into its own log. Package sdkhttp has what
// plugins that call HTTP services share; docs/plugins.md is the protocol.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/livehook/livehook/plugins/protocol"
)

// maxRequest bounds what is read from stdin; livehook's requests are far
// smaller, so more is not a request.
const maxRequest = 16 << 20

// Request is one delivery.
type Request struct {
	Plugin     string
	Action     string // the instance's name in the rules
	Rule       string
	DeliveryID string // stable across retries: pass it to services as an idempotency key
	// Timeout is how long livehook lets the plugin run; the handler's
	// context ends a little earlier, so there is time to answer.
	Timeout  time.Duration
	Settings json.RawMessage
	Params   json.RawMessage
	Event    json.RawMessage
}

// DecodeSettings decodes the instance's settings into v, typically a
// struct with json tags named as in the manifest.
func (r *Request) DecodeSettings(v any) error { return decode(r.Settings, v) }

// DecodeParams decodes the step's rendered parameters into v.
func (r *Request) DecodeParams(v any) error { return decode(r.Params, v) }

// DecodeEvent decodes the event into v.
func (r *Request) DecodeEvent(v any) error { return decode(r.Event, v) }

func decode(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	return json.Unmarshal(raw, v)
}

// Response is a handler's verdict. Build it with Delivered, Retryable or
// Permanent and set the other fields as needed.
type Response struct {
	Outcome    protocol.Outcome
	Detail     string
	IDs        map[string]string
	RetryAfter time.Duration // with Retryable: how long the service asked to wait
	// Events are follow-up events; each must marshal to a JSON object.
	Events []any
}

// Delivered reports success.
func Delivered(detail string) Response {
	return Response{Outcome: protocol.Delivered, Detail: detail}
}

// Retryable reports a failure that trying again later may fix.
func Retryable(format string, args ...any) Response {
	return Response{Outcome: protocol.Retryable, Detail: fmt.Sprintf(format, args...)}
}

// Permanent reports a failure that retrying cannot fix.
func Permanent(format string, args ...any) Response {
	return Response{Outcome: protocol.Permanent, Detail: fmt.Sprintf(format, args...)}
}

// Handler handles one delivery. It should return before ctx ends.
type Handler func(ctx context.Context, req *Request) Response

// Serve runs h on the request on stdin, writes its response to stdout and
// exits: status 0 once an answer is written, 1 if none could be.
func Serve(h Handler) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Stdin, os.Stdout, h)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "plugin:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Run is Serve without the process: it reads a request from in, runs h
// and writes the response to out. A request it cannot use is answered
// with a permanent failure. The error is non-nil only if the answer could
// not be written.
func Run(ctx context.Context, in io.Reader, out io.Writer, h Handler) error {
	resp := handle(ctx, in, h)
	b, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	if _, err := out.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	return nil
}

func handle(ctx context.Context, in io.Reader, h Handler) protocol.Response {
	raw, err := io.ReadAll(io.LimitReader(in, maxRequest+1))
	if err != nil {
		return failure("read request: %v", err)
	}
	if len(raw) > maxRequest {
		return failure("request over %d bytes", maxRequest)
	}
	var pr protocol.Request
	if err := json.Unmarshal(raw, &pr); err != nil {
		return failure("request is not JSON: %v", err)
	}
	if pr.Protocol != protocol.Version {
		return failure("protocol %d: this plugin speaks %d", pr.Protocol, protocol.Version)
	}
	req := &Request{
		Plugin: pr.Plugin, Action: pr.Action, Rule: pr.Rule, DeliveryID: pr.DeliveryID,
		Timeout:  time.Duration(pr.TimeoutMS) * time.Millisecond,
		Settings: pr.Settings, Params: pr.Params, Event: pr.Event,
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, answerBy(req.Timeout))
		defer cancel()
	}
	return encode(call(ctx, req, h))
}

// answerBy is how long a handler may work: a tenth of the timeout (at most
// a second) is kept back to write the answer before the plugin is killed.
func answerBy(timeout time.Duration) time.Duration {
	return timeout - min(timeout/10, time.Second)
}

// call runs h, turning a panic into a permanent failure: a bug will panic
// again on the same input.
func call(ctx context.Context, req *Request, h Handler) (resp Response) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "plugin panic: %v\n%s", p, debug.Stack())
			resp = Permanent("plugin panic: %v", p)
		}
	}()
	return h(ctx, req)
}

// encode converts a handler's response to the wire form, reporting a
// response the protocol would refuse as the plugin's own permanent failure.
func encode(r Response) protocol.Response {
	pr := protocol.Response{Outcome: r.Outcome, Detail: r.Detail, IDs: r.IDs, RetryAfter: r.RetryAfter.Seconds()}
	for i, e := range r.Events {
		b, err := json.Marshal(e)
		if err != nil {
			return failure("follow-up event %d: %v", i, err)
		}
		pr.Events = append(pr.Events, b)
	}
	if err := pr.Validate(); err != nil {
		return failure("plugin answer: %v", err)
	}
	return pr
}

func failure(format string, args ...any) protocol.Response {
	return protocol.Response{Outcome: protocol.Permanent, Detail: fmt.Sprintf(format, args...)}
}
