// Package store keeps what livehook must not lose: every accepted event,
// and every delivery job with its attempts. Store is the interface the
// engine uses; Local is the embedded implementation (a journal flushed to disk for
// the request path, bbolt for state and indexes), and a networked backend
// can implement the same interface later.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/livehook/livehook/engine/event"
)

// ErrNotFound is returned for an unknown event or job id.
var ErrNotFound = errors.New("not found")

// ErrNotDead is returned when replaying a job that is not a dead letter.
var ErrNotDead = errors.New("not a dead letter")

// EventDetail is one event with what happened to it.
type EventDetail struct {
	*EventRecord
	Jobs []*Job `json:"jobs"`
}

// Accepted is an event as intake accepted it, before rules ran.
type Accepted struct {
	Seq       uint64        `json:"-"` // journal position, set by Append
	Event     *event.Event  `json:"event"`
	DedupeKey string        `json:"dedupe_key,omitempty"`
	DedupeTTL time.Duration `json:"dedupe_ttl,omitempty"`
	// Stored is set by Unapplied for an event already in the db (applied
	// ahead of the position before a crash): only its Seq matters.
	Stored bool `json:"-"`
	// Encoded is this record as the journal holds it, set by Append and
	// Unapplied; passed on in EventRecord.Encoded, it spares encoding the
	// event a second time.
	Encoded []byte `json:"-"`
}

// EventRecord is an event after rule evaluation.
type EventRecord struct {
	Event     *event.Event `json:"event"`
	Matched   []string     `json:"matched"` // rules that matched, in order
	Throttled []string     `json:"throttled,omitempty"`
	Errors    []string     `json:"errors,omitempty"` // conditions that failed at run time
	DedupeKey string       `json:"dedupe_key,omitempty"`
	Replays   int          `json:"replays,omitempty"`
	// Encoded, if set, is the event's Accepted.Encoded: the store keeps
	// those bytes for the event and its dedupe key instead of encoding them
	// again.
	Encoded []byte `json:"-"`
}

// Job states.
const (
	Pending   = "pending"
	Delivered = "delivered"
	Dead      = "dead" // a dead letter: failed permanently, or out of attempts or age
)

// Job is one delivery: an (event, rule, step) to run until it succeeds.
type Job struct {
	ID         string    `json:"id"` // also the delivery's idempotency key
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
}

// Tries counts the attempts of the current series.
func (j *Job) Tries() int { return len(j.Attempts) - j.Since }

// Attempt is one try at a job.
type Attempt struct {
	At       time.Time         `json:"at"`
	Outcome  string            `json:"outcome"` // delivered, retryable, permanent
	Detail   string            `json:"detail,omitempty"`
	IDs      map[string]string `json:"ids,omitempty"`
	Duration time.Duration     `json:"duration_ns"`
}

// DedupeEntry remembers an accepted event's identity until it expires.
type DedupeEntry struct {
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// EventFilter selects events for listing.
type EventFilter struct {
	Limit  int
	Source string
	Rule   string // only events that matched this rule
}

// Store is what the engine needs from storage.
type Store interface {
	// Append durably records an accepted event and sets its Seq. It is the
	// only call on the request path.
	Append(ctx context.Context, a *Accepted) error
	// Unapplied calls fn, in order, for every appended event after the
	// applied position (the work a crash interrupted; Stored marks those
	// already applied ahead of it), and returns that position.
	Unapplied(fn func(*Accepted) error) (applied uint64, err error)
	// Apply atomically records evaluated events with their new jobs, and
	// that every appended event up to seq is applied.
	Apply(events []*EventRecord, jobs []*Job, dedupe map[string]DedupeEntry, seq uint64) error
	// PutJobs records jobs' new state.
	PutJobs(jobs ...*Job) error
	// PutEvent replaces an event record (after a replay).
	PutEvent(ev *EventRecord) error
	// PendingJobs lists every job still to run.
	PendingJobs() ([]*Job, error)
	// Dedupe lists the identities not expired at now.
	Dedupe(now time.Time) (map[string]DedupeEntry, error)
	// Event returns an event with its jobs.
	Event(id string) (*EventRecord, []*Job, error)
	// Job returns one job.
	Job(id string) (*Job, error)
	// Events lists events, newest first.
	Events(f EventFilter) ([]*EventRecord, error)
	// DeadLetters lists dead jobs, newest first.
	DeadLetters(limit int) ([]*Job, error)
	// DeadCount counts the dead jobs.
	DeadCount() (int, error)
	// Prune deletes events received before cutoff whose jobs are all
	// delivered, with those jobs, and expired dedupe entries.
	Prune(cutoff, now time.Time) (int, error)
	// Size is the bytes the store takes on disk.
	Size() int64
	Close() error
}
