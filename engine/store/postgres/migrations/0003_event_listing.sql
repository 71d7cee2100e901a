-- What the event listing filters on and shows: each event's stream and
-- kind (bytea: they come from callbacks), its jobs counted by state (kept
-- by a trigger as jobs are written, so no listing counts jobs), the worst
-- of them as the delivery outcome, and the retries answered as duplicates
-- of it. An event still in the inbox counts its duplicates there.
ALTER TABLE livehook_inbox
    ADD COLUMN stream bytea,
    ADD COLUMN kind bytea,
    ADD COLUMN duplicates integer NOT NULL DEFAULT 0,
    ADD COLUMN last_duplicate timestamptz;
ALTER TABLE livehook_events
    ADD COLUMN stream bytea,
    ADD COLUMN kind bytea,
    ADD COLUMN pending integer NOT NULL DEFAULT 0,
    ADD COLUMN delivered integer NOT NULL DEFAULT 0,
    ADD COLUMN dead integer NOT NULL DEFAULT 0,
    ADD COLUMN duplicates integer NOT NULL DEFAULT 0,
    ADD COLUMN last_duplicate timestamptz;
ALTER TABLE livehook_events ADD COLUMN delivery text COLLATE "C" GENERATED ALWAYS AS (
    CASE WHEN dead > 0 THEN 'dead' WHEN pending > 0 THEN 'pending' WHEN delivered > 0 THEN 'delivered' ELSE 'none' END) STORED;

-- Rows written before: the stream and kind from the event's JSON (one
-- holding an escaped NUL, which json refuses to return as text, keeps
-- none), the jobs counted once.
UPDATE livehook_inbox SET
    stream = CASE WHEN strpos(convert_from(event, 'UTF8'), '\u0000') = 0 THEN convert_to(convert_from(event, 'UTF8')::json ->> 'stream', 'UTF8') END,
    kind = CASE WHEN strpos(convert_from(event, 'UTF8'), '\u0000') = 0 THEN convert_to(convert_from(event, 'UTF8')::json ->> 'kind', 'UTF8') END;
UPDATE livehook_events SET
    stream = CASE WHEN strpos(convert_from(event, 'UTF8'), '\u0000') = 0 THEN convert_to(convert_from(event, 'UTF8')::json ->> 'stream', 'UTF8') END,
    kind = CASE WHEN strpos(convert_from(event, 'UTF8'), '\u0000') = 0 THEN convert_to(convert_from(event, 'UTF8')::json ->> 'kind', 'UTF8') END;
UPDATE livehook_events e SET pending = c.pending, delivered = c.delivered, dead = c.dead
FROM (SELECT event_id,
        count(*) FILTER (WHERE state = 'pending') AS pending,
        count(*) FILTER (WHERE state = 'delivered') AS delivered,
        count(*) FILTER (WHERE state = 'dead') AS dead
    FROM livehook_jobs GROUP BY event_id) c
WHERE e.id = c.event_id;

-- A job's move between states moves its event's counts. Jobs are deleted
-- only with their event (pruning), so deletes count nothing.
CREATE FUNCTION livehook_count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.state = NEW.state AND OLD.event_id = NEW.event_id THEN
            RETURN NULL;
        END IF;
        UPDATE livehook_events SET
            pending = pending - (OLD.state = 'pending')::int,
            delivered = delivered - (OLD.state = 'delivered')::int,
            dead = dead - (OLD.state = 'dead')::int
        WHERE id = OLD.event_id;
    END IF;
    UPDATE livehook_events SET
        pending = pending + (NEW.state = 'pending')::int,
        delivered = delivered + (NEW.state = 'delivered')::int,
        dead = dead + (NEW.state = 'dead')::int
    WHERE id = NEW.event_id;
    RETURN NULL;
END $$;
CREATE TRIGGER livehook_jobs_count AFTER INSERT OR UPDATE OF state, event_id ON livehook_jobs
    FOR EACH ROW EXECUTE FUNCTION livehook_count_jobs();

-- Each filter an index in id order, so that a page newest first reads
-- about its rows; the matched rules by GIN (matched @> ARRAY[rule]).
CREATE INDEX livehook_events_stream ON livehook_events (stream, id);
CREATE INDEX livehook_events_source ON livehook_events (source, id);
CREATE INDEX livehook_events_kind ON livehook_events (kind, id);
CREATE INDEX livehook_events_delivery ON livehook_events (delivery, id);
CREATE INDEX livehook_events_duplicated ON livehook_events (id) WHERE duplicates > 0;
CREATE INDEX livehook_events_matched ON livehook_events USING gin (matched);
