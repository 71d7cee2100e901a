package engine

import "time"

// RulesReport describes the loaded rules for GET /api/rules. It names
// actions and their types but shows no settings, so no secret can leak.
type RulesReport struct {
	Path       string         `json:"path"`
	Files      []string       `json:"files"`
	Hash       string         `json:"hash"`
	Actions    []ActionReport `json:"actions"`
	Rules      []RuleReport   `json:"rules"`
	Sources    []SourceReport `json:"sources"`
	LastReload ReloadStatus   `json:"last_reload"`
	// MatchesSince is when the rules' counts since load began: the load
	// of the rules in force.
	MatchesSince time.Time `json:"matches_since"`
}

// ActionReport is one named action.
type ActionReport struct {
	Name string `json:"name"`
	Type string `json:"type"`
	File string `json:"file"`
	Line int    `json:"line"`
}

// RuleReport is one rule.
type RuleReport struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	When        string          `json:"when,omitempty"`
	Enabled     bool            `json:"enabled"`
	Stop        bool            `json:"stop,omitempty"`
	Throttle    *ThrottleReport `json:"throttle,omitempty"`
	Steps       []StepReport    `json:"steps"`
	File        string          `json:"file"`
	Line        int             `json:"line"`
	// Matches are the rule's matches this process evaluated.
	Matches MatchReport `json:"matches"`
}

// ThrottleReport is a rule's throttle.
type ThrottleReport struct {
	By     []string `json:"by"`
	Window string   `json:"window"`
}

// StepReport is one step of a rule.
type StepReport struct {
	Action string `json:"action"`
	Type   string `json:"type"`
}

// Report describes the current rules and the last reload.
func (e *Engine) Report() RulesReport {
	s := e.Rules()
	now := e.opts.Deps.Now()
	rep := RulesReport{Path: s.Path, Files: s.Files, Hash: s.Hash, LastReload: e.LastReload(),
		Actions: []ActionReport{}, Rules: []RuleReport{}, Sources: sourceReports(s), MatchesSince: e.matches.sinceLoadAt()}
	for _, a := range s.Actions {
		rep.Actions = append(rep.Actions, ActionReport{Name: a.Name, Type: a.Type, File: a.File, Line: a.Line})
	}
	for _, r := range s.Rules {
		rr := RuleReport{Name: r.Name, Description: r.Description, When: r.When, Enabled: r.Enabled,
			Stop: r.Stop, File: r.File, Line: r.Line, Steps: []StepReport{}, Matches: e.matches.report(r.Name, now)}
		if t := r.Throttle; t != nil {
			rr.Throttle = &ThrottleReport{By: t.By, Window: t.Window.String()}
		}
		for _, st := range r.Steps {
			rr.Steps = append(rr.Steps, StepReport{Action: st.Action, Type: st.Type})
		}
		rep.Rules = append(rep.Rules, rr)
	}
	rep.LastReload.Error = s.Secrets.Redact(rep.LastReload.Error)
	return rep
}
