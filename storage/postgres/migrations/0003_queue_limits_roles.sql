-- 0003: the fair queue, per-server limits and cool-down, allowances by role (SQLite's
-- 0005_queue_limits_roles), in PostgreSQL types.
--
-- * jobs.state gains 'queued': accepted and charged, waiting for a free slot; jobs gain
--   cancelled_by (who cancelled a queued job) and queue_round (its place in the
--   round-robin, fixed on arrival).
-- * guild_settings gains the queue limits; NULL means "the bot's default".
-- * role_allowances: credits per period for members holding a role.
-- * audit_log gains target_role_id, for changes made to a role's allowance.

ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN (
    'queued', 'reserved', 'submitted', 'completed', 'delivered',
    'failed', 'refunded', 'expired'));
ALTER TABLE jobs ADD COLUMN cancelled_by BIGINT;
ALTER TABLE jobs ADD COLUMN queue_round BIGINT;

-- The queue (oldest first) and the running counts: WHERE state IN (...) ORDER BY created_at.
CREATE INDEX jobs_state_created ON jobs (state, created_at);
-- The next job's round: the member's unfinished jobs and the guild's queue.
CREATE INDEX jobs_guild_state_round ON jobs (guild_id, state, queue_round);

ALTER TABLE guild_settings ADD COLUMN member_running INTEGER CHECK (member_running BETWEEN 0 AND 1000);
ALTER TABLE guild_settings ADD COLUMN member_queued INTEGER CHECK (member_queued BETWEEN 0 AND 1000);
ALTER TABLE guild_settings ADD COLUMN server_running INTEGER CHECK (server_running BETWEEN 0 AND 10000);
ALTER TABLE guild_settings ADD COLUMN cooldown_seconds INTEGER CHECK (cooldown_seconds BETWEEN 0 AND 86400);

CREATE TABLE role_allowances (
    guild_id   BIGINT  NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
    role_id    BIGINT  NOT NULL,
    credits    INTEGER NOT NULL CHECK (credits BETWEEN 0 AND 1000000),
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

ALTER TABLE audit_log ADD COLUMN target_role_id BIGINT;
