-- 0007: indexes for the statements that run every few seconds, so their cost does not
-- grow with the settled history (issue 14, defect 6; tests/storage/test_query_plans.py).
--
-- * jobs_member_state: a member's jobs in one state (the admission's queued count and
--   oldest queued job, the member's unfinished rounds, a claim's running count) without
--   walking the member's delivered and refunded history.
-- * jobs_guild_round: the guild's highest queue round is one step from the end of this
--   index, not a walk over every job the guild ever had.

CREATE INDEX jobs_member_state ON jobs (guild_id, user_id, state, created_at);
CREATE INDEX jobs_guild_round ON jobs (guild_id, queue_round);
