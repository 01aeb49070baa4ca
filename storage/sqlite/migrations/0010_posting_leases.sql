-- 0010: the posting leases still running, for the sweep that ends dead posters' leases
-- (issue 14, defects 5 and 6; tests/storage/test_query_plans.py). Partial: a job holds a
-- posting lease only while it is being posted, so the index stays small however many
-- videos were delivered. A comparison on delivering_until implies its WHERE term.

CREATE INDEX jobs_posting ON jobs (delivering_until) WHERE delivering_until IS NOT NULL;
