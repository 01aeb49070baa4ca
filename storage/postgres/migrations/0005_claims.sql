-- 0005: work claimed by one process at a time (SQLite's 0006_claims), in PostgreSQL types.
--
-- * processes: every running bot process registers (id = host:pid:random) and beats
--   (last_seen); a process whose heartbeat is older than the liveness window is dead and
--   its leases are void.
-- * jobs.lease_owner / lease_until: who holds the job's current piece of background work
--   (a poll, a failure notice, a reservation being submitted) and until when. The
--   delivery lease keeps its own end time (delivering_until) and names its owner here.
-- * jobs.upload_limit: the guild's upload limit in bytes, recorded where the request
--   arrived, so any process (on any shard) delivers with the right limit.

CREATE TABLE processes (
    id        TEXT PRIMARY KEY,
    started   DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL
);

ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN upload_limit BIGINT;
