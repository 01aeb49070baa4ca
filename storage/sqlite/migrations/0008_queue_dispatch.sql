-- 0008: the queue's shared state, so every process dispatches from the same facts.
--
-- * submit_gate: one row, the 402 pause and the 429 hold (was held in each process's
--   memory, so a restart or another process found out again with the next submit).
--   out_of_credits 0/1; not_before: no submit before this epoch second (NULL: open);
--   backoff: the seconds the next 402 pauses for (doubles up to the cap; NULL: the first).
-- * queue_members / queue_guilds: per member and per guild, how many jobs are queued and
--   how many hold a running slot (reserved or submitted). Kept by the triggers below in
--   the same statement that changes a job's state, so they are exact on every engine and
--   in every process. The dispatcher reads the members with a free slot from them (and
--   only those members' queues) instead of every queued job; claim_queued checks the
--   limits against them instead of counting the member's whole history.
-- * jobs_member_queue: one member's queue in fair order (round, then oldest first).
--
-- A later migration that rebuilds the jobs table (as 0005 did) must create the two
-- triggers again: dropping a table drops its triggers.

CREATE TABLE submit_gate (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    out_of_credits INTEGER NOT NULL DEFAULT 0 CHECK (out_of_credits IN (0, 1)),
    not_before     REAL,
    backoff        REAL,
    updated_at     REAL    NOT NULL
);

INSERT INTO submit_gate (id, out_of_credits, updated_at) VALUES (1, 0, 0);

CREATE TABLE queue_members (
    guild_id INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    queued   INTEGER NOT NULL DEFAULT 0 CHECK (queued >= 0),
    running  INTEGER NOT NULL DEFAULT 0 CHECK (running >= 0),
    PRIMARY KEY (guild_id, user_id)
);

CREATE INDEX queue_members_waiting ON queue_members (guild_id, user_id) WHERE queued > 0;

CREATE TABLE queue_guilds (
    guild_id INTEGER PRIMARY KEY,
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

CREATE TRIGGER jobs_queue_insert AFTER INSERT ON jobs
WHEN NEW.state IN ('queued', 'reserved', 'submitted')
BEGIN
    INSERT INTO queue_members (guild_id, user_id, queued, running)
    VALUES (NEW.guild_id, NEW.user_id, NEW.state = 'queued', NEW.state <> 'queued')
    ON CONFLICT (guild_id, user_id) DO UPDATE
        SET queued = queued + excluded.queued, running = running + excluded.running;
    INSERT INTO queue_guilds (guild_id, queued, running)
    VALUES (NEW.guild_id, NEW.state = 'queued', NEW.state <> 'queued')
    ON CONFLICT (guild_id) DO UPDATE
        SET queued = queued + excluded.queued, running = running + excluded.running;
END;

CREATE TRIGGER jobs_queue_update AFTER UPDATE OF state ON jobs
WHEN OLD.state <> NEW.state
 AND (OLD.state IN ('queued', 'reserved', 'submitted')
      OR NEW.state IN ('queued', 'reserved', 'submitted'))
BEGIN
    INSERT INTO queue_members (guild_id, user_id, queued, running)
    VALUES (NEW.guild_id, NEW.user_id, 0, 0)
    ON CONFLICT (guild_id, user_id) DO NOTHING;
    UPDATE queue_members
       SET queued = queued + (NEW.state = 'queued') - (OLD.state = 'queued'),
           running = running + (NEW.state IN ('reserved', 'submitted'))
                             - (OLD.state IN ('reserved', 'submitted'))
     WHERE guild_id = NEW.guild_id AND user_id = NEW.user_id;
    INSERT INTO queue_guilds (guild_id, queued, running) VALUES (NEW.guild_id, 0, 0)
    ON CONFLICT (guild_id) DO NOTHING;
    UPDATE queue_guilds
       SET queued = queued + (NEW.state = 'queued') - (OLD.state = 'queued'),
           running = running + (NEW.state IN ('reserved', 'submitted'))
                             - (OLD.state IN ('reserved', 'submitted'))
     WHERE guild_id = NEW.guild_id;
END;
