package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
)

// sendTestCmd sends one rendered message through a configured action
// instance, to prove a webhook URL, a robot's signature or a token before
// the first real alert depends on it.
func sendTestCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("send-test", `send-test [--rules PATH] [--with YAML] [--event EVENT.json] ACTION

Render a message through the action instance ACTION of the rules (a name
under actions:) and send it once, for real, to check its URL, signature or
credentials before the first alert. Prints what was sent and the service's
answer, secrets hidden; exits 1 unless it was delivered. The message is
rendered from a made-up record_error event of stream send-test, or from
--event.`, stderr)
	rulesPath := fs.String("rules", "rules.yaml", "the rules `PATH` that defines the action (env LIVEHOOK_RULES)")
	with := fs.String("with", "", "step parameters as a YAML mapping, as a rule's with: gives them, e.g. '{text: \"livehook test\"}'")
	eventFile := fs.String("event", "", "render the message from this event `FILE` instead")
	name := fs.String("source", event.SourceRecord, "decode --event as coming from `NAME`: "+sourceNames())
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	var plugins string
	pluginsFlag(fs, &plugins, getenv)
	if v, ok := getenv(envName("rules")); ok {
		*rulesPath = v
	}
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: 2, msg: "send-test: want exactly one ACTION, a name under actions:"}
	}
	set, err := loadForCLI(*rulesPath, getenv, plugins)
	if err != nil {
		return reportLoadError(stdout, err)
	}
	defer set.Retire()
	action := fs.Arg(0)
	var a *rules.Action
	var names []string
	for _, x := range set.Actions {
		names = append(names, x.Name)
		if x.Name == action {
			a = x
		}
	}
	if a == nil {
		return &exitError{code: 2, msg: fmt.Sprintf("send-test: no action %q under actions: in %s (there are: %s)", action, *rulesPath, strings.Join(names, ", "))}
	}
	params, err := withParams(*with)
	if err != nil {
		return &exitError{code: 2, msg: "send-test: --with: " + err.Error()}
	}
	step, err := a.Instance.Step(actionapi.Params{File: "--with", Node: params, Secrets: set.Secrets})
	if err != nil {
		return &exitError{code: 2, msg: "send-test: --with: " + set.Secrets.Redact(err.Error())}
	}
	ev, err := sendTestEvent(*eventFile, *name)
	if err != nil {
		return &exitError{code: 2, msg: "send-test: " + err.Error()}
	}
	set.MapDomain(ev)
	in := actionapi.Input{Event: ev, Rule: "send-test", DeliveryID: "send-test." + action,
		Temporal: map[string]any{"key": map[string]any{"domain": ev.Domain, "app": ev.App, "stream": ev.Stream}}}
	plan, err := step.Plan(in)
	if err != nil {
		return &exitError{code: 1, msg: "send-test: render: " + set.Secrets.Redact(err.Error())}
	}
	fmt.Fprintf(stdout, "action %s (%s)\n  target: %s\n", a.Name, a.Type, strings.TrimSpace(plan.Method+" "+plan.Target))
	if plan.Body != nil {
		fmt.Fprintf(stdout, "  body: %s\n", indentBody(plan.Body))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res := step.Do(ctx, plan)
	fmt.Fprintf(stdout, "  answer: %s", res.Outcome)
	if res.Detail != "" {
		fmt.Fprintf(stdout, ": %s", set.Secrets.Redact(res.Detail))
	}
	fmt.Fprintln(stdout)
	for _, k := range slices.Sorted(maps.Keys(res.IDs)) {
		fmt.Fprintf(stdout, "  %s: %s\n", k, set.Secrets.Redact(res.IDs[k]))
	}
	if res.Outcome != actionapi.Delivered {
		return &exitError{code: 1, msg: fmt.Sprintf("send-test: %s did not take the message", a.Name)}
	}
	return nil
}

// withParams reads --with: a YAML mapping, as a step's with: is.
func withParams(src string) (*yaml.Node, error) {
	if src == "" {
		return nil, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("want a mapping of parameters, such as '{text: \"hello\"}'")
	}
	return doc.Content[0], nil
}

// sendTestEvent is the event a test message is rendered from: the file's,
// decoded as intake would, or a made-up recording error.
func sendTestEvent(file, name string) (*event.Event, error) {
	now := time.Now().UTC().Truncate(time.Second)
	if file == "" {
		return &event.Event{ID: "send-test", Source: event.SourceRecord, Kind: event.KindStatus, Domain: "livehook.test",
			App: "live", Stream: "send-test", Event: "record_error", ReceivedAt: now,
			Payload: map[string]any{"domain": "livehook.test", "app": "live", "stream": "send-test", "event": "record_error"}}, nil
	}
	src, err := lookupSource(sourceapi.Default(), name)
	if err != nil {
		return nil, err
	}
	body, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ev, err := src.DecodeFile(name, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	ev.ID, ev.ReceivedAt = "send-test", now
	return ev, nil
}
