-- 0005: the fair queue, per-server limits and cool-down, allowances by role.
--
-- * jobs.state gains 'queued': accepted and charged, waiting for a free slot. The state
--   CHECK cannot be altered in place on SQLite, so the table is rebuilt (same columns, same
--   ids, same indexes, the columns of 0003 and 0004 and
--   the indexes of 0004 included) with the wider CHECK and the new column cancelled_by (who cancelled
--   a queued job), and queue_round (the job's place in the round-robin, fixed on arrival).
-- * guild_settings gains the queue limits; NULL means "the bot's default".
-- * role_allowances: credits per period for members holding a role.
-- * audit_log gains target_role_id, for changes made to a role's allowance.

CREATE TABLE jobs_new (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id             INTEGER NOT NULL,
    channel_id           INTEGER NOT NULL,
    user_id              INTEGER NOT NULL,
    interaction_id       INTEGER,
    progress_message_id  INTEGER,
    mode                 TEXT    NOT NULL,
    prompt               TEXT    NOT NULL,
    image_url            TEXT,
    duration             INTEGER NOT NULL CHECK (duration > 0),
    aspect_ratio         TEXT    NOT NULL,
    quality              TEXT    NOT NULL,
    sound                INTEGER NOT NULL CHECK (sound IN (0, 1)),
    cost                 INTEGER NOT NULL CHECK (cost >= 0),
    task_id              TEXT,
    state                TEXT    NOT NULL CHECK (state IN (
                             'queued', 'reserved', 'submitted', 'completed', 'delivered',
                             'failed', 'refunded', 'expired')),
    attempts             INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_poll_at         REAL,
    delivering_until     REAL,
    delivery_nonce       TEXT    NOT NULL UNIQUE,
    result_url           TEXT,
    delivered_message_id INTEGER,
    last_error           TEXT,
    created_at           REAL    NOT NULL,
    updated_at           REAL    NOT NULL,
    submitted_at         REAL,
    completed_at         REAL,
    delivered_at         REAL,
    refunded_at          REAL,
    notified_at          REAL,
    last_pending_at      REAL,
    last_frame_url       TEXT,
    message_deleted_at   REAL,
    redelivered_at       REAL,
    refunded_by          INTEGER,
    sandbox              INTEGER NOT NULL DEFAULT 0 CHECK (sandbox IN (0, 1)),
    erased_at            REAL,
    cancelled_by         INTEGER,
    queue_round          INTEGER
);

INSERT INTO jobs_new (
    id, guild_id, channel_id, user_id, interaction_id, progress_message_id, mode, prompt,
    image_url, duration, aspect_ratio, quality, sound, cost, task_id, state, attempts,
    next_poll_at, delivering_until, delivery_nonce, result_url, delivered_message_id,
    last_error, created_at, updated_at, submitted_at, completed_at, delivered_at,
    refunded_at, notified_at, last_pending_at, last_frame_url, message_deleted_at,
    redelivered_at, refunded_by, sandbox, erased_at)
SELECT
    id, guild_id, channel_id, user_id, interaction_id, progress_message_id, mode, prompt,
    image_url, duration, aspect_ratio, quality, sound, cost, task_id, state, attempts,
    next_poll_at, delivering_until, delivery_nonce, result_url, delivered_message_id,
    last_error, created_at, updated_at, submitted_at, completed_at, delivered_at,
    refunded_at, notified_at, last_pending_at, last_frame_url, message_deleted_at,
    redelivered_at, refunded_by, sandbox, erased_at
FROM jobs;

DROP TABLE jobs;

ALTER TABLE jobs_new RENAME TO jobs;

CREATE INDEX jobs_due ON jobs (state, next_poll_at);
CREATE INDEX jobs_user_period ON jobs (guild_id, user_id, created_at);
CREATE INDEX jobs_guild_period ON jobs (guild_id, created_at);
CREATE INDEX jobs_unnotified ON jobs (refunded_at) WHERE state = 'refunded' AND notified_at IS NULL;
-- From 0004 (moderator insight): /stats' covering index and retention's partial index.
CREATE INDEX jobs_guild_stats
    ON jobs (guild_id, created_at, state, user_id, cost, duration, quality, sound,
             delivered_at, completed_at, sandbox);
CREATE INDEX jobs_retention ON jobs (created_at)
    WHERE erased_at IS NULL AND state IN ('delivered', 'refunded');
-- The queue (oldest first) and the running counts: WHERE state IN (...) ORDER BY created_at.
CREATE INDEX jobs_state_created ON jobs (state, created_at);
-- The next job's round: the member's unfinished jobs and the guild's queue.
CREATE INDEX jobs_guild_state_round ON jobs (guild_id, state, queue_round);

ALTER TABLE guild_settings ADD COLUMN member_running INTEGER CHECK (member_running BETWEEN 0 AND 1000);
ALTER TABLE guild_settings ADD COLUMN member_queued INTEGER CHECK (member_queued BETWEEN 0 AND 1000);
ALTER TABLE guild_settings ADD COLUMN server_running INTEGER CHECK (server_running BETWEEN 0 AND 10000);
ALTER TABLE guild_settings ADD COLUMN cooldown_seconds INTEGER CHECK (cooldown_seconds BETWEEN 0 AND 86400);

CREATE TABLE role_allowances (
    guild_id   INTEGER NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
    role_id    INTEGER NOT NULL,
    credits    INTEGER NOT NULL CHECK (credits BETWEEN 0 AND 1000000),
    updated_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

ALTER TABLE audit_log ADD COLUMN target_role_id INTEGER;
