-- 0009: command sync hashes, and members' data erased on request.
--
-- * command_sync: per sync target (application and dev guild, or global) the SHA-256 of
--   the command payload last synced, so a start-up syncs only when the commands changed.
-- * jobs.forget_user_at: a member erased their data (/privacy delete); their jobs of the
--   current credit period keep the member's id until then (so the erasure does not hand
--   back a used allowance) and lose it at this time, like every older job already did.

CREATE TABLE command_sync (
    target       TEXT PRIMARY KEY,
    payload_hash TEXT NOT NULL,
    synced_at    REAL NOT NULL
);

ALTER TABLE jobs ADD COLUMN forget_user_at REAL;
CREATE INDEX jobs_forget_user ON jobs (forget_user_at) WHERE forget_user_at IS NOT NULL;
