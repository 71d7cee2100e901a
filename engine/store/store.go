// Package store keeps what livehook must not lose: every accepted event
// with its identity for recognising retries, what evaluating it decided,
// and every delivery job with its attempts.
//
// Store is the contract the engine works through, shaped so that a
// networked backend shared by several processes can implement it
// honestly: the store owns all durable state (dedupe identities, the
// events still to evaluate, pending jobs and who is running them), every
// call takes a context, jobs are run under leases rather than in-process
// timers, and the types here are the contract's, not any backend's
// records. Local is the embedded implementation; storetest holds the
// conformance suite every backend must pass.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/livehook/livehook/engine/event"
)

// ErrNotFound is returned for an unknown event or job id.
var ErrNotFound = errors.New("not found")

// ErrNotDead is returned when replaying a job that is not a dead letter.
var ErrNotDead = errors.New("not a dead letter")

// ErrStateConflict is returned by Commit when a state entry changed after
// the evaluation read it (another evaluator sharing the backend): nothing
// was recorded, and the batch is to be evaluated again.
var ErrStateConflict = errors.New("evaluation state changed meanwhile")

// ErrNotTaken is returned by Commit when an event of the batch is not, or
// no longer, the caller's to evaluate (evaluated already, or handed to
// another evaluator after the caller was taken for gone): nothing was
// recorded, and the batch is not to be tried again.
var ErrNotTaken = errors.New("event not taken for evaluation")

// ErrLeaseLost is returned when finishing a job whose lease its owner no
// longer holds: it expired and another owner may be running the job.
var ErrLeaseLost = errors.New("job lease lost")

// Incoming is an event as intake took it, before rules ran.
type Incoming struct {
	Event *event.Event
	// DedupeKey identifies retries of one callback (see event.DedupeKey);
	// empty means the event has no identity and is never a duplicate.
	DedupeKey string
	// DedupeTTL is how long the identity is remembered after
	// Event.ReceivedAt.
	DedupeTTL time.Duration
}

// Acceptance is what Accept decided.
type Acceptance struct {
	// ID is the event's id: its own, or the first copy's for a duplicate.
	ID        string
	Duplicate bool
}

// Accepted is an accepted event not yet evaluated.
type Accepted struct {
	Event     *event.Event `json:"event"`
	DedupeKey string       `json:"dedupe_key,omitempty"`
}

// Evaluation is what evaluating one accepted event, or one due timer,
// decided. It is committed as one unit: the outcome, the jobs and the
// state changes appear together or not at all.
type Evaluation struct {
	EventID   string   // "" for a timer's evaluation: only State and Jobs count
	Matched   []string // rules that matched, in order
	Throttled []string // matched, but held back by their throttle
	Fed       []string // rules over time whose condition held: the event changed their state
	Errors    []string // conditions that failed at run time
	Jobs      []*Job   // new pending jobs
	// Shadow is what rules in shadow mode matched or fired, each recorded
	// with the event it names: this evaluation's, or an earlier one (a
	// timer's firing belongs to the event that set it).
	Shadow []Shadow
	// State is what the evaluation changed of the state rules keep across
	// events (throttle windows), in order.
	State []StateChange
}

// State is one entry of the state rules keep across events, keyed by
// rule and by what the rule groups events by.
type State struct {
	Value []byte
	// Version changes with every write; 0 for an entry that does not
	// exist.
	Version uint64
	// Due is when the entry's timer fires (zero: it has none).
	Due time.Time
}

// StateEntry is a state entry with its key, as listings and due timers
// give it.
type StateEntry struct {
	Key string
	State
	Expires time.Time
}

// StateChange writes one state entry.
type StateChange struct {
	Key string
	// Read is the version the evaluation saw; the commit fails with
	// ErrStateConflict if the entry is no longer at it.
	Read  uint64
	Value []byte // nil deletes the entry
	// Expires is when the entry may be forgotten: a rule that reads it
	// after that finds nothing.
	Expires time.Time
	// Due, if set, gives the entry a timer: DueTimers hands the entry out
	// from then on, until a change sets another time or none.
	Due time.Time
}

// EventRecord is an evaluated event with its outcome.
type EventRecord struct {
	Event     *event.Event `json:"event"`
	Matched   []string     `json:"matched"`
	Throttled []string     `json:"throttled,omitempty"`
	Fed       []string     `json:"fed,omitempty"` // rules over time whose condition held
	Shadow    []Shadow     `json:"shadow,omitempty"`
	Errors    []string     `json:"errors,omitempty"`
	DedupeKey string       `json:"dedupe_key,omitempty"`
	Replays   int          `json:"replays,omitempty"`
	// What became of the event since, kept by the store as its jobs
	// change and its retries arrive (see Summary); filled on reads.
	Summary
}

// Summary is what the store keeps of an event's fate: its jobs by state
// (updated when the evaluation commits, when a job finishes, dead-letters
// or is replayed) and the retries of it that were answered as duplicates.
type Summary struct {
	Outcome       string     `json:"outcome,omitempty"` // from Deliveries: see Deliveries.Outcome
	Deliveries    Deliveries `json:"deliveries,omitzero"`
	Duplicates    int        `json:"duplicates,omitempty"`    // retries answered as duplicates of it
	LastDuplicate time.Time  `json:"last_duplicate,omitzero"` // when the last of them came
}

// Deliveries counts an event's jobs by state.
type Deliveries struct {
	Pending   int `json:"pending,omitempty"`
	Delivered int `json:"delivered,omitempty"`
	Dead      int `json:"dead,omitempty"`
}

// Outcomes of an event's deliveries, as listings show and filter them.
const (
	OutcomeDead      = "dead"      // a delivery is a dead letter
	OutcomePending   = "pending"   // none dead, one still to run
	OutcomeDelivered = "delivered" // every delivery succeeded
	OutcomeNone      = "none"      // nothing to deliver: no rule matched, or its matches were throttled or in shadow mode
	// OutcomeDuplicate is a filter, not an outcome: events that retries
	// were answered as duplicates of.
	OutcomeDuplicate = "duplicate"
)

// Outcome is the worst state of the jobs: a dead letter outweighs
// pending work, which outweighs deliveries.
func (d Deliveries) Outcome() string {
	switch {
	case d.Dead > 0:
		return OutcomeDead
	case d.Pending > 0:
		return OutcomePending
	case d.Delivered > 0:
		return OutcomeDelivered
	}
	return OutcomeNone
}

// Shadow is a match or firing of a rule in shadow mode: recorded, never
// delivered.
type Shadow struct {
	EventID string    `json:"-"` // the event it is recorded with
	Rule    string    `json:"rule"`
	At      time.Time `json:"at"`
	// Firing is what a rule over time fired with, as a job's Firing.
	Firing json.RawMessage `json:"firing,omitempty"`
}

// EventDetail is one event with every delivery it made.
type EventDetail struct {
	*EventRecord
	Jobs []*Job `json:"jobs"`
}

// Job states.
const (
	Pending   = "pending"
	Delivered = "delivered"
	Dead      = "dead" // a dead letter: failed permanently, or out of attempts or age
)

// Job is one delivery: an (event, rule, step) to run until it succeeds.
type Job struct {
	ID         string    `json:"id"` // also the delivery's idempotency key; see JobID
	EventID    string    `json:"event_id"`
	Rule       string    `json:"rule"`
	Step       int       `json:"step"`
	Action     string    `json:"action"`
	Type       string    `json:"type"`
	Suppressed int       `json:"suppressed,omitempty"`
	State      string    `json:"state"`
	Created    time.Time `json:"created"`
	NextAt     time.Time `json:"next_at,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Attempts   []Attempt `json:"attempts"`
	// Since is the index in Attempts where the current series of tries
	// began: a replayed dead letter gets a fresh allowance.
	Since int `json:"since,omitempty"`
	// Firing is what a rule over time fired with (its key, the events it
	// gathered), for the delivery to render; the engine's own encoding.
	Firing json.RawMessage `json:"firing,omitempty"`
}

// Tries counts the attempts of the current series.
func (j *Job) Tries() int { return len(j.Attempts) - j.Since }

// JobID names the job of an event's rule step. It is stable, so it doubles
// as the delivery's idempotency key; the nth replay of an event makes new
// deliveries, with their own ids.
func JobID(eventID, rule string, step, replay int) string {
	if replay > 0 {
		return fmt.Sprintf("%s.%s.%d.r%d", eventID, rule, step, replay)
	}
	return fmt.Sprintf("%s.%s.%d", eventID, rule, step)
}

// Attempt is one try at a job.
type Attempt struct {
	At       time.Time         `json:"at"`
	Outcome  string            `json:"outcome"` // delivered, retryable, permanent
	Detail   string            `json:"detail,omitempty"`
	IDs      map[string]string `json:"ids,omitempty"`
	Duration time.Duration     `json:"duration_ns"`
}

// Claim asks for due jobs.
type Claim struct {
	Owner string        // who will run them; a finish must name the same owner
	Now   time.Time     // jobs due at or before this
	Lease time.Duration // how long the owner holds each job without finishing it
	// Limits is each action instance's delivery concurrency: a job is not
	// claimed while its action has that many live leases, whoever holds
	// them. Jobs of an action not listed are bounded by Other (they belong
	// to rules that changed and are settled without running).
	Limits map[string]int
	Other  int
}

// Claimed is a leased job with the event it delivers.
type Claimed struct {
	Job   *Job
	Event *event.Event
}

// EventFilter selects events for listing; the filters combine. It is
// the one query of the API, the console and the CLI.
type EventFilter struct {
	Limit   int
	Source  string
	Kind    string
	Stream  string // a prefix of the stream
	Rule    string // only events that matched this rule
	Outcome string // one of the Outcome* values
	// From and To bound when the event was accepted (the time in its id):
	// at or after From, before To; zero is unbounded.
	From, To time.Time
	// Before is a cursor: only events older than this event id. The last
	// id of a page continues the listing.
	Before string
}

// Check refuses a filter no event could meet for a reason the caller
// should hear about.
func (f EventFilter) Check() error {
	switch f.Outcome {
	case "", OutcomeDead, OutcomePending, OutcomeDelivered, OutcomeNone, OutcomeDuplicate:
	default:
		return fmt.Errorf("outcome %q: want delivered, pending, dead, none or duplicate", f.Outcome)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return fmt.Errorf("time range: from (%s) must be before to (%s)", f.From.UTC().Format(time.RFC3339), f.To.UTC().Format(time.RFC3339))
	}
	return nil
}

// DeadFilter selects dead letters for listing, grouping and bulk work.
// Fields left zero select everything.
type DeadFilter struct {
	Limit  int
	Before string // a cursor: only dead letters listed after this job id
	Action string // only this action's
	Error  string // only those whose last error is exactly this text
	// From and To bound when the job was created (From inclusive, To
	// exclusive).
	From, To time.Time
}

// Stats is what the store holds, for metrics and readiness.
type Stats struct {
	Unevaluated int   // accepted events not yet evaluated
	Pending     int   // jobs still to run, claimed or not
	Dead        int   // dead letters
	StateKeys   int   // state entries
	Timers      int   // state entries with a timer
	Bytes       int64 // what the store takes on disk, where it knows
}

// Store is what the engine needs from storage.
type Store interface {
	// Accept durably records an event with its dedupe identity, as one
	// step: for a key already held by an event whose identity has not
	// expired at ev.ReceivedAt, nothing is recorded and the answer is a
	// duplicate of that event. A retry that arrives while the first copy
	// is still being written waits for that write. A duplicate is counted
	// on the first copy's Summary. It is the call on the request path.
	Accept(ctx context.Context, in *Incoming) (Acceptance, error)
	// Unevaluated takes up to max accepted events that no one is
	// evaluating, oldest first, waiting while there are none until ctx
	// ends; once ctx has ended it returns what there is without waiting,
	// and ctx's error when there is nothing. Events taken but not
	// committed come back after a reopen.
	//
	// A backend shared with other processes may also return early, with
	// no events and no error, when a timer no one holds may come due
	// before ctx's deadline (or at all, if ctx has none) that the caller's
	// last DueTimers could not report: another process committed it, or
	// the process that took it died. The caller then asks DueTimers again.
	Unevaluated(ctx context.Context, max int) ([]*Accepted, error)
	// Commit records the evaluations of taken events, with their new jobs
	// and state changes, in one unit.
	Commit(ctx context.Context, evals []*Evaluation) error
	// State reads state entries at now. A key never written is absent from
	// the answer; an entry expired at now has no Value, and the version
	// that a change of it must name as read.
	State(ctx context.Context, keys []string, now time.Time) (map[string]State, error)
	// DueTimers takes up to max state entries whose timer is due at now,
	// earliest first, for an evaluation to commit; an entry taken and not
	// changed by a commit comes back after a reopen. next is when the
	// next timer not taken comes due (zero if none).
	DueTimers(ctx context.Context, now time.Time, max int) (due []StateEntry, next time.Time, err error)
	// ListState lists state entries whose key starts with prefix, in key
	// order, after the key after (a cursor), up to limit.
	ListState(ctx context.Context, prefix, after string, limit int) ([]StateEntry, error)
	// DropState deletes every state entry whose key starts with prefix,
	// with its timer, and says how many there were.
	DropState(ctx context.Context, prefix string) (int, error)
	// ClaimJobs leases due pending jobs to c.Owner, earliest first, within
	// c.Limits. It also returns when the next job comes due that the same
	// claim would take (zero if none), so the caller knows when to ask
	// again; Wake tells it when to ask sooner. With an error, claimed
	// still holds the jobs that were leased and must be run.
	ClaimJobs(ctx context.Context, c Claim) (claimed []Claimed, next time.Time, err error)
	// Finish records a claimed job's new state (an attempt appended, and
	// delivered, dead, or pending again at NextAt) and ends the lease.
	// ErrLeaseLost: owner no longer holds it, and nothing was recorded.
	Finish(ctx context.Context, owner string, j *Job) error
	// Wake receives, coalesced, whenever jobs may have become claimable
	// sooner than a previous ClaimJobs said.
	Wake() <-chan struct{}
	// Event returns an evaluated event with its jobs.
	Event(ctx context.Context, id string) (*EventDetail, error)
	// Job returns one job.
	Job(ctx context.Context, id string) (*Job, error)
	// Events lists evaluated events that meet every filter, newest first,
	// through indexes: a page costs about its rows, not the events stored.
	Events(ctx context.Context, f EventFilter) ([]*EventRecord, error)
	// DeadLetters lists dead jobs that f selects, newest (highest id)
	// first, after f.Before, up to f.Limit.
	DeadLetters(ctx context.Context, f DeadFilter) ([]*Job, error)
	// DeadGroups counts the dead letters f selects (its Limit and Before
	// aside) by action, class and error text, largest group first.
	DeadGroups(ctx context.Context, f DeadFilter) ([]DeadGroup, error)
	// DeleteDeadLetters deletes the jobs of ids that are dead letters and
	// says how many it deleted; other ids are left alone.
	DeleteDeadLetters(ctx context.Context, ids []string) (int, error)
	// OldestPending returns the pending job created earliest, nil when
	// none is pending.
	OldestPending(ctx context.Context) (*Job, error)
	// ReplayJob makes a dead letter pending again at now, with a fresh
	// allowance of attempts and age. ErrNotDead for any other job.
	ReplayJob(ctx context.Context, id string, now time.Time) (*Job, error)
	// ReplayEvent evaluates a stored event again: plan gets the event
	// and the number of this replay and returns the new jobs, which are
	// recorded with the replay as one unit.
	ReplayEvent(ctx context.Context, id string, plan func(ev *event.Event, replay int) ([]*Job, error)) ([]*Job, error)
	// Prune deletes events received before cutoff whose jobs are all
	// delivered, with those jobs, and identities and state expired at now.
	Prune(ctx context.Context, cutoff, now time.Time) (int, error)
	// Stats counts what the store holds.
	Stats(ctx context.Context) (Stats, error)
	Close() error
}

// Pacer is implemented by stores that pace sends for everyone sharing
// them: a chat service's limit (a Slack webhook's 1 message a second, a
// DingTalk robot's 20 a minute) covers every process sending through
// it, so the slots are the store's, not any process's.
type Pacer interface {
	// Pace reserves the next send slot of key, at most one every every
	// with bursts of up to burst, and returns how long after now the slot
	// is: the caller sends then. The slot is taken whether or not the
	// caller uses it, and no two calls, from any process, get the same
	// one. State is kept per key (a generic cell rate algorithm: the one
	// time the next slot is theoretically due), so a key costs one entry
	// whatever its rate.
	Pace(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (wait time.Duration, err error)
}

// PaceWait is the wait before the slot a reservation took, given the
// key's theoretical arrival time after it (tat: when the slot after it
// is due had no burst been allowed): a burst of n lets a slot go n-1
// intervals before its turn.
func PaceWait(tat, now time.Time, every time.Duration, burst int) time.Duration {
	return max(tat.Sub(now)-time.Duration(burst)*every, 0)
}

// CheckPace refuses a pace no slot can be reserved at.
func CheckPace(key string, every time.Duration, burst int) error {
	if key == "" || every < time.Microsecond || burst < 1 {
		return fmt.Errorf("pace %q every %v with bursts of %d: want a key, an interval of 1µs or more and a burst of at least 1", key, every, burst)
	}
	return nil
}
