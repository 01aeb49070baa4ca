-- When the requester was told that a refunded job failed. A refund and its notice are two
-- steps (a database write, then a Discord message); recording the notice lets a restart
-- send the notices a crash cut off, so nobody is refunded without being told why.
ALTER TABLE jobs ADD COLUMN notified_at REAL;

-- Jobs refunded before this column existed were told (or never will be): do not resend.
UPDATE jobs SET notified_at = refunded_at WHERE state = 'refunded';

CREATE INDEX jobs_unnotified ON jobs (refunded_at) WHERE state = 'refunded' AND notified_at IS NULL;
