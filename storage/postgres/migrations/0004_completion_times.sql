-- 0004: how long jobs take at the API (SQLite's 0003_completion_times), in PostgreSQL types.
-- Polling only brackets a completion: it happened after the last "still pending" answer
-- and before the "completed" one. Both ends are kept (seconds after submission).

-- When the API last said the job was still unfinished (the lower end of the bracket).
ALTER TABLE jobs ADD COLUMN last_pending_at DOUBLE PRECISION;

CREATE TABLE completion_times (
    job_id        BIGINT  PRIMARY KEY,
    mode          TEXT    NOT NULL,
    quality       TEXT    NOT NULL,
    duration      INTEGER NOT NULL,
    sound         INTEGER NOT NULL CHECK (sound IN (0, 1)),
    lower_seconds DOUBLE PRECISION NOT NULL CHECK (lower_seconds >= 0),
    upper_seconds DOUBLE PRECISION NOT NULL CHECK (upper_seconds >= lower_seconds),
    recorded_at   DOUBLE PRECISION NOT NULL
);

-- Start-up loads the most recent completions.
CREATE INDEX completion_times_recent ON completion_times (recorded_at);
