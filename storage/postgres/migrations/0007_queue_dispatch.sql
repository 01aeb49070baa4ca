-- 0007: the queue's shared state (SQLite's 0008_queue_dispatch), in PostgreSQL types.
--
-- * submit_gate: one row, the 402 pause and the 429 hold (was held in each process's
--   memory, so a restart or another process found out again with the next submit).
--   out_of_credits 0/1; not_before: no submit before this epoch second (NULL: open);
--   backoff: the seconds the next 402 pauses for (doubles up to the cap; NULL: the first).
-- * queue_members / queue_guilds: per member and per guild, how many jobs are queued and
--   how many hold a running slot (reserved or submitted). Kept by the trigger below in
--   the same statement that changes a job's state, so they are exact in every process.
--   The dispatcher reads the members with a free slot from them (and only those
--   members' queues) instead of every queued job; claim_queued checks the limits
--   against them instead of counting the member's whole history.
-- * jobs_member_queue: one member's queue in fair order (round, then oldest first).

CREATE TABLE submit_gate (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    out_of_credits INTEGER NOT NULL DEFAULT 0 CHECK (out_of_credits IN (0, 1)),
    not_before     DOUBLE PRECISION,
    backoff        DOUBLE PRECISION,
    updated_at     DOUBLE PRECISION NOT NULL
);

INSERT INTO submit_gate (id, out_of_credits, updated_at) VALUES (1, 0, 0);

CREATE TABLE queue_members (
    guild_id BIGINT  NOT NULL,
    user_id  BIGINT  NOT NULL,
    queued   INTEGER NOT NULL DEFAULT 0 CHECK (queued >= 0),
    running  INTEGER NOT NULL DEFAULT 0 CHECK (running >= 0),
    PRIMARY KEY (guild_id, user_id)
);

CREATE INDEX queue_members_waiting ON queue_members (guild_id, user_id) WHERE queued > 0;

CREATE TABLE queue_guilds (
    guild_id BIGINT  PRIMARY KEY,
    queued   INTEGER NOT NULL DEFAULT 0 CHECK (queued >= 0),
    running  INTEGER NOT NULL DEFAULT 0 CHECK (running >= 0)
);

CREATE INDEX queue_guilds_waiting ON queue_guilds (guild_id) WHERE queued > 0;

CREATE INDEX jobs_member_queue ON jobs (guild_id, user_id, queue_round, created_at, id)
    WHERE state = 'queued';

INSERT INTO queue_members (guild_id, user_id, queued, running)
SELECT guild_id, user_id,
       SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state IN ('reserved', 'submitted') THEN 1 ELSE 0 END)
FROM jobs WHERE state IN ('queued', 'reserved', 'submitted')
GROUP BY guild_id, user_id;

INSERT INTO queue_guilds (guild_id, queued, running)
SELECT guild_id, SUM(queued), SUM(running) FROM queue_members GROUP BY guild_id;

CREATE FUNCTION jobs_queue_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    dq INTEGER := 0;
    dr INTEGER := 0;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.state = NEW.state THEN
            RETURN NULL;
        END IF;
        dq := dq - (OLD.state = 'queued')::INTEGER;
        dr := dr - (OLD.state IN ('reserved', 'submitted'))::INTEGER;
    END IF;
    dq := dq + (NEW.state = 'queued')::INTEGER;
    dr := dr + (NEW.state IN ('reserved', 'submitted'))::INTEGER;
    IF dq = 0 AND dr = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO queue_members (guild_id, user_id, queued, running)
    VALUES (NEW.guild_id, NEW.user_id, 0, 0)
    ON CONFLICT (guild_id, user_id) DO NOTHING;
    UPDATE queue_members SET queued = queued + dq, running = running + dr
     WHERE guild_id = NEW.guild_id AND user_id = NEW.user_id;
    INSERT INTO queue_guilds (guild_id, queued, running) VALUES (NEW.guild_id, 0, 0)
    ON CONFLICT (guild_id) DO NOTHING;
    UPDATE queue_guilds SET queued = queued + dq, running = running + dr
     WHERE guild_id = NEW.guild_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_queue_counts AFTER INSERT OR UPDATE OF state ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_queue_counts();
