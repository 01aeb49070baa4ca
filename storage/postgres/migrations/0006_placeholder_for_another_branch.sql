-- 0006: a placeholder. The lead gave this number to another branch's migration; this
-- branch's own is 0007. Delete this file when merging (that branch's 0006 replaces it).
SELECT 1;
