package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/livehook/livehook/engine/store"
)

// shadow records the matches and firings of rules in shadow mode with the
// events they belong to, counts them, and returns the others. A shadow
// rule is evaluated as a live one is, with its state, but takes no part in
// throttling and plans no job: switching it to live later finds no
// throttle window it opened.
func (v *evaluator) shadow(ms []match, now time.Time) ([]match, error) {
	live := ms[:0:0]
	for _, mt := range ms {
		if !mt.rule.Shadow {
			live = append(live, mt)
			continue
		}
		sh := store.Shadow{EventID: mt.ev.ID, Rule: mt.rule.Name, At: now}
		if mt.firing != nil {
			enc, err := json.Marshal(mt.firing)
			if err != nil {
				return nil, fmt.Errorf("encode firing of %s: %w", mt.rule.Name, err)
			}
			sh.Firing = enc
		}
		mt.out.Shadow = append(mt.out.Shadow, sh)
		v.metrics.ruleMatches.WithLabelValues(mt.rule.Name, "shadow").Inc()
		v.log.Info("rule matched in shadow mode: nothing is sent", "event_id", mt.ev.ID, "rule", mt.rule.Name)
	}
	return live, nil
}
