// Package actiontest holds test helpers for action types.
package actiontest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
)

// SeedURI is the object key of the seed recording SeedEvent returns; it
// contains ':', as the official sample does.
const SeedURI = "live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv"

// Node parses a YAML snippet into the mapping node the loader hands over;
// an empty snippet gives nil.
func Node(t testing.TB, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// Settings are the settings of instance name of type typ as the rules loader
// builds them from rules.yaml: logs discarded, the shared HTTP pool, the
// wall clock and a fresh Redactor (Secrets) that Decode fills.
func Settings(t testing.TB, name, typ, src string) actionapi.Settings {
	t.Helper()
	return actionapi.Settings{
		Name: name, Type: typ, File: "rules.yaml", Node: Node(t, src),
		Deps:    actionapi.Deps{Logger: slog.New(slog.DiscardHandler), HTTP: actionapi.NewHTTP(nil), Now: time.Now},
		Secrets: &secret.Redactor{},
	}
}

// Step makes a step of inst; with is the step's with: mapping, "" for none.
func Step(t testing.TB, inst actionapi.Instance, with string) actionapi.Step {
	t.Helper()
	p := actionapi.Params{File: "rules.yaml"}
	if with != "" {
		p.Node = Node(t, with)
	}
	st, err := inst.Step(p)
	if err != nil {
		t.Fatalf("step: %v", err)
	}
	return st
}

// Deliver plans st for in and runs the plan, as the dispatcher does.
func Deliver(t testing.TB, st actionapi.Step, in actionapi.Input) (actionapi.Plan, actionapi.Result) {
	t.Helper()
	plan, err := st.Plan(in)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return plan, st.Do(ctx, plan)
}

// SeedEvent is the project's seed file-generated callback, the official
// sample; the path is relative to an actions/<type> package directory.
func SeedEvent(t testing.TB) *event.Event {
	t.Helper()
	body, err := os.ReadFile("../../testdata/events/file_flv.json")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.DecodeRecord(body)
	if err != nil {
		t.Fatal(err)
	}
	if ev.URI != SeedURI {
		t.Fatalf("seed uri = %q, want %q", ev.URI, SeedURI)
	}
	return ev
}

// DeliverAtOnce sends message i ("text: message i" as the step's with:)
// through instances[i%len(instances)], n in all and all at once, as
// deliveries in progress would, and fails t for any not delivered.
func DeliverAtOnce(t testing.TB, in actionapi.Input, n int, instances ...actionapi.Instance) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		st := Step(t, instances[i%len(instances)], fmt.Sprintf("text: message %d", i))
		wg.Go(func() {
			if _, res := Deliver(t, st, in); res.Outcome != actionapi.Delivered {
				t.Errorf("message %d: %v %q", i, res.Outcome, res.Detail)
			}
		})
	}
	wg.Wait()
}
