-- The first schema. Strings that come from outside (dedupe identities,
-- state keys, rule and action names) are bytea: text refuses NUL bytes
-- and invalid UTF-8, and bytea sorts byte by byte, as the embedded store
-- does. Ids livehook makes itself (ULIDs) are text in the C collation.

-- Processes using the store. A claim (an event or timer taken for
-- evaluation) held by an owner not seen for the grace period is free again.
CREATE TABLE livehook_owners (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

-- Identities of accepted events, for recognising retries.
CREATE TABLE livehook_dedupe (
    key      bytea PRIMARY KEY,
    event_id text COLLATE "C" NOT NULL,
    expires  timestamptz NOT NULL
);
CREATE INDEX livehook_dedupe_expires ON livehook_dedupe (expires);

-- Accepted events not yet evaluated; claimed_by is who is evaluating one.
CREATE TABLE livehook_inbox (
    id          text COLLATE "C" PRIMARY KEY,
    source      text COLLATE "C" NOT NULL,
    received_at timestamptz NOT NULL,
    dedupe_key  bytea,
    event       bytea NOT NULL, -- the event as JSON
    claimed_by  bigint
);

-- Evaluated events with their outcome.
CREATE TABLE livehook_events (
    id          text COLLATE "C" PRIMARY KEY,
    source      text COLLATE "C" NOT NULL,
    received_at timestamptz NOT NULL,
    dedupe_key  bytea,
    event       bytea NOT NULL,   -- the event as JSON
    matched     bytea[] NOT NULL, -- rules that matched, in order
    outcome     bytea NOT NULL,   -- JSON: throttled, fed, errors
    replays     integer NOT NULL DEFAULT 0
);
CREATE INDEX livehook_events_received ON livehook_events (received_at);

-- Delivery jobs. job is the whole job as JSON; the other columns are what
-- claims, listings and pruning select on. A lease is held by lease_owner
-- (the runner) in the process lease_process until lease_until, or until
-- that process is no longer seen.
CREATE TABLE livehook_jobs (
    id            bytea PRIMARY KEY,
    event_id      text COLLATE "C" NOT NULL,
    action        bytea NOT NULL,
    state         text COLLATE "C" NOT NULL,
    next_at       timestamptz NOT NULL,
    lease_owner   text,
    lease_process bigint,
    lease_until   timestamptz,
    job           bytea NOT NULL
);
CREATE INDEX livehook_jobs_event ON livehook_jobs (event_id);
CREATE INDEX livehook_jobs_due ON livehook_jobs (action, next_at, id) WHERE state = 'pending';
CREATE INDEX livehook_jobs_leased ON livehook_jobs (action, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX livehook_jobs_dead ON livehook_jobs (id) WHERE state = 'dead';

-- State rules keep across events, with their timers. Every write takes a
-- new version from the sequence, so a version is never seen twice.
CREATE SEQUENCE livehook_state_version;
CREATE TABLE livehook_state (
    key      bytea PRIMARY KEY,
    value    bytea NOT NULL,
    version  bigint NOT NULL,
    expires  timestamptz NOT NULL,
    due      timestamptz,
    taken_by bigint -- the owner whose evaluation took the due timer
);
CREATE INDEX livehook_state_due ON livehook_state (due, key) WHERE due IS NOT NULL;
CREATE INDEX livehook_state_expires ON livehook_state (expires) WHERE due IS NULL;
