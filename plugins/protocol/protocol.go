// Package protocol is livehook's plugin protocol, version 1. For each
// delivery livehook starts the plugin's command once, writes one Request
// as JSON to its stdin and closes it, and reads one Response as JSON from
// its stdout. docs/plugins.md is the full description, for plugins written
// in any language; plugins written in Go use package sdk instead.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Version is the protocol version this package speaks. A manifest names
// the version its plugin speaks, and livehook refuses other versions at load.
const Version = 1

// Limits of an answer. A plugin that writes more stdout than MaxResponse is
// killed; one that reports more events than MaxEvents gives no valid answer.
const (
	MaxResponse   = 1 << 20
	MaxEvents     = 100
	MaxRetryAfter = 3600 // seconds
)

// ErrNoAnswer is DecodeResponse's error for empty output.
var ErrNoAnswer = errors.New("no answer on stdout")

// Outcome is a plugin's verdict on one delivery.
type Outcome string

// The outcomes a plugin can report.
const (
	Delivered Outcome = "delivered" // the service accepted it
	Retryable Outcome = "retryable" // trying again later may succeed
	Permanent Outcome = "permanent" // retrying cannot help
)

// Request is what livehook writes to the plugin's stdin. The fields are
// written in this order, so line-oriented tools can take the first match
// of a key before the event's own keys appear.
type Request struct {
	Protocol   int    `json:"protocol"`
	Plugin     string `json:"plugin"`      // the plugin's name, the `type:` in rules
	Action     string `json:"action"`      // the instance's name, or rule/do[i] for an inline step
	Rule       string `json:"rule"`        // the rule that fired
	DeliveryID string `json:"delivery_id"` // stable across retries: the idempotency key
	TimeoutMS  int64  `json:"timeout_ms"`  // the plugin is killed this long after it starts
	// Settings are the instance's settings, secrets included: they reach
	// the plugin only here, never through its arguments or environment.
	Settings json.RawMessage `json:"settings"`
	// Params are the step's parameters, templates already rendered.
	Params json.RawMessage `json:"params"`
	// Event is the event the rule matched, as `livehook test --json` shows it.
	Event json.RawMessage `json:"event"`
}

// Response is what the plugin writes to its stdout: exactly one JSON
// object and nothing else but white space.
type Response struct {
	Outcome Outcome           `json:"outcome"`
	Detail  string            `json:"detail,omitempty"` // the service's own words, for the log
	IDs     map[string]string `json:"ids,omitempty"`    // identifiers worth logging: a job id, a message id
	// RetryAfter is how many seconds the service asked to wait before a
	// retry (a rate limit); it only means something with Retryable.
	// livehook caps it at MaxRetryAfter.
	RetryAfter float64 `json:"retry_after,omitempty"`
	// Events are follow-up events, each a JSON object, that livehook feeds
	// back into its rules with source "plugin.<name>".
	Events []json.RawMessage `json:"events,omitempty"`
}

// Validate reports what makes r an invalid answer.
func (r Response) Validate() error {
	switch r.Outcome {
	case Delivered, Retryable, Permanent:
	case "":
		return errors.New("no outcome (want delivered, retryable or permanent)")
	default:
		return fmt.Errorf("outcome %q: want delivered, retryable or permanent", r.Outcome)
	}
	if r.RetryAfter < 0 || math.IsNaN(r.RetryAfter) || math.IsInf(r.RetryAfter, 0) {
		return fmt.Errorf("retry_after %v: want a number of seconds, 0 or more", r.RetryAfter)
	}
	for k := range r.IDs {
		if k == "" {
			return errors.New("ids: an empty key")
		}
	}
	if len(r.Events) > MaxEvents {
		return fmt.Errorf("%d events: at most %d", len(r.Events), MaxEvents)
	}
	for i, e := range r.Events {
		if b := bytes.TrimSpace(e); len(b) == 0 || b[0] != '{' {
			return fmt.Errorf("events[%d]: want a JSON object", i)
		}
	}
	return nil
}

// DecodeResponse decodes a plugin's stdout strictly: one JSON object, no
// unknown keys, nothing after it, and a valid outcome. Strictness turns a
// misspelt key into a clear failure rather than a silently dropped detail.
func DecodeResponse(out []byte) (Response, error) {
	var r Response
	if len(bytes.TrimSpace(out)) == 0 {
		return r, ErrNoAnswer
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Response{}, fmt.Errorf("not a JSON answer: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Response{}, errors.New("not a JSON answer: more after the JSON object")
	}
	if err := r.Validate(); err != nil {
		return Response{}, fmt.Errorf("invalid answer: %w", err)
	}
	return r, nil
}
