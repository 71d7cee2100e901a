-- What rules in shadow mode matched or fired, recorded with the event
-- they name: each element one match or firing as JSON, in order.
ALTER TABLE livehook_events ADD COLUMN shadow bytea[] NOT NULL DEFAULT '{}';
