-- 0001: job ledger, credits, guild settings, moderator audit log.
-- Times are UNIX epoch seconds (REAL, UTC); Discord ids are 64-bit INTEGERs.

CREATE TABLE jobs (
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
                             'reserved', 'submitted', 'completed', 'delivered',
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
    refunded_at          REAL
);

-- Polling loop: WHERE state = 'submitted' AND next_poll_at <= ? ORDER BY next_poll_at.
CREATE INDEX jobs_due ON jobs (state, next_poll_at);
-- Per-user period usage (the reserve guard) and a user's recent jobs.
CREATE INDEX jobs_user_period ON jobs (guild_id, user_id, created_at);
-- Guild usage summaries.
CREATE INDEX jobs_guild_period ON jobs (guild_id, created_at);

CREATE TABLE guild_settings (
    guild_id        INTEGER PRIMARY KEY,
    default_credits INTEGER CHECK (default_credits BETWEEN 0 AND 1000000),
    updated_at      REAL    NOT NULL
);

CREATE TABLE user_allowances (
    guild_id   INTEGER NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL,
    credits    INTEGER NOT NULL CHECK (credits BETWEEN 0 AND 1000000),
    updated_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- A moderator's "reset usage": jobs with id <= after_job_id no longer count for the user.
CREATE TABLE usage_resets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id     INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    after_job_id INTEGER NOT NULL,
    moderator_id INTEGER NOT NULL,
    created_at   REAL    NOT NULL
);
CREATE INDEX usage_resets_user ON usage_resets (guild_id, user_id);

CREATE TABLE allowed_channels (
    guild_id   INTEGER NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

CREATE TABLE blocked_words (
    guild_id INTEGER NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
    word     TEXT    NOT NULL CHECK (word <> '' AND word = lower(word)),
    PRIMARY KEY (guild_id, word)
);

CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id       INTEGER NOT NULL,
    moderator_id   INTEGER NOT NULL,
    target_user_id INTEGER,
    action         TEXT    NOT NULL,
    old_value      TEXT,
    new_value      TEXT,
    created_at     REAL    NOT NULL
);
CREATE INDEX audit_log_guild ON audit_log (guild_id, id);
