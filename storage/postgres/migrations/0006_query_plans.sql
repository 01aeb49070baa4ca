-- 0006: indexes for the statements that run every few seconds, so their cost does not
-- grow with the settled history (SQLite's 0007; issue 14, defect 6;
-- tests/storage/test_query_plans.py).
--
-- * jobs_member_unfinished: a member's queued, reserved and submitted jobs (the
--   admission's queued count and oldest queued job, the member's unfinished rounds, a
--   claim's running count). Partial: it holds the live jobs only, so it stays small and
--   a new job's entry lands on a page already in the cache, however long the history.
--   A query must repeat the index's WHERE term for SQLite to use it.
-- * jobs_guild_round: the guild's highest queue round is one step from the end of this
--   index, not a walk over every job the guild ever had.

CREATE INDEX jobs_member_unfinished ON jobs (guild_id, user_id, state, created_at)
    WHERE state IN ('queued', 'reserved', 'submitted');
CREATE INDEX jobs_guild_round ON jobs (guild_id, queue_round);
