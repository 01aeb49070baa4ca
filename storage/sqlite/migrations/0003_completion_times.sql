-- 0003: how long jobs take at the API, learned to place polls where completion is likely.
-- Polling only brackets a completion: it happened after the last "still pending" answer
-- and before the "completed" one. Both ends are kept (seconds after submission).

-- When the API last said the job was still unfinished (the lower end of the bracket).
ALTER TABLE jobs ADD COLUMN last_pending_at REAL;

CREATE TABLE completion_times (
    job_id        INTEGER PRIMARY KEY,
    mode          TEXT    NOT NULL,
    quality       TEXT    NOT NULL,
    duration      INTEGER NOT NULL,
    sound         INTEGER NOT NULL CHECK (sound IN (0, 1)),
    lower_seconds REAL    NOT NULL CHECK (lower_seconds >= 0),
    upper_seconds REAL    NOT NULL CHECK (upper_seconds >= lower_seconds),
    recorded_at   REAL    NOT NULL
);

-- Start-up loads the most recent completions.
CREATE INDEX completion_times_recent ON completion_times (recorded_at);
