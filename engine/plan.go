package engine

import (
	"fmt"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// PlannedStep is what one step of a rule would send, rendered as its
// delivery renders it: `livehook test` and the console's playground show
// it. Nothing is sent.
type PlannedStep struct {
	Action string          `json:"action"`
	Type   string          `json:"type"`
	Plan   *actionapi.Plan `json:"plan,omitempty"` // secrets redacted by the action
	Error  string          `json:"error,omitempty"`
}

// PlanMatch renders every step of r for a match of ev, as the first
// delivery of each would render it.
func PlanMatch(set *rules.Set, r *rules.Rule, ev *event.Event) []PlannedStep {
	out := make([]PlannedStep, 0, len(r.Steps))
	for _, s := range r.Steps {
		in := actionapi.Input{Event: ev, Rule: r.Name, DeliveryID: store.JobID(ev.ID, r.Name, s.Index, 0)}
		ps := PlannedStep{Action: s.Action, Type: s.Type}
		ps.Plan, ps.Error = planStep(set, s, in)
		out = append(out, ps)
	}
	return out
}

// planStep renders one step, or says why it cannot, redacted. A
// panicking action fails the rendering, not its caller.
func planStep(set *rules.Set, s *rules.Step, in actionapi.Input) (plan *actionapi.Plan, problem string) {
	defer func() {
		if p := recover(); p != nil {
			plan, problem = nil, set.Secrets.Redact(fmt.Sprintf("the %s action failed unexpectedly: %v", s.Type, p))
		}
	}()
	p, err := s.Step.Plan(in)
	if err != nil {
		return nil, set.Secrets.Redact(err.Error())
	}
	return &p, ""
}
