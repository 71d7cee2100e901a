-- The chat services' pacing, shared by every process: per key (a webhook
-- or robot, by a hash of its URL), when its next send slot is due had no
-- burst been allowed. A reservation is one upsert of its row, so the row
-- lock orders the processes reserving at once.
CREATE TABLE livehook_pace (
    key bytea PRIMARY KEY,
    tat timestamptz NOT NULL
);
