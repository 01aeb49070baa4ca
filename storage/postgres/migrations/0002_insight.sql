-- 0002: moderator and operator insight (SQLite's 0004_insight), in PostgreSQL types.
-- Times are UNIX epoch seconds (DOUBLE PRECISION, UTC), as everywhere else.

-- The channel where the bot posts its moderator log (NULL = logging off).
ALTER TABLE guild_settings ADD COLUMN log_channel_id BIGINT;

-- The optional last frame of an image-to-video job (native dialect: image_urls[1]).
ALTER TABLE jobs ADD COLUMN last_frame_url TEXT;
-- When the delivered message was deleted (Delete button, or found missing by /job).
ALTER TABLE jobs ADD COLUMN message_deleted_at DOUBLE PRECISION;
-- When a moderator's "Deliver again" claimed the job (it may only happen once).
ALTER TABLE jobs ADD COLUMN redelivered_at DOUBLE PRECISION;
-- The moderator who refunded the job by hand (NULL for automatic refunds).
ALTER TABLE jobs ADD COLUMN refunded_by BIGINT;
-- 1 when the job was made by the built-in sandbox (no API key).
ALTER TABLE jobs ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0 CHECK (sandbox IN (0, 1));
-- When retention erased the job's prompt and URLs (the row stays for accounting).
ALTER TABLE jobs ADD COLUMN erased_at DOUBLE PRECISION;

-- /stats: a guild's period read from the index (PostgreSQL: key columns plus INCLUDE).
CREATE INDEX jobs_guild_stats
    ON jobs (guild_id, created_at)
    INCLUDE (state, user_id, cost, duration, quality, sound, delivered_at, completed_at, sandbox);

-- Retention: settled jobs whose personal data is still there, oldest first.
CREATE INDEX jobs_retention ON jobs (created_at)
    WHERE erased_at IS NULL AND state IN ('delivered', 'refunded');
