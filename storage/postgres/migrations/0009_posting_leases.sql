-- 0009: the posting leases still running, for the sweep that ends dead posters' leases
-- (SQLite's 0010; issue 14, defects 5 and 6; tests/storage/test_query_plans.py). Partial:
-- a job holds a posting lease only while it is being posted, so the index stays small
-- however many videos were delivered.

CREATE INDEX jobs_posting ON jobs (delivering_until) WHERE delivering_until IS NOT NULL;
