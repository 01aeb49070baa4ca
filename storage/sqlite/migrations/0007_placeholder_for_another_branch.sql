-- 0007: a placeholder. The lead gave this number to another branch's migration; this
-- branch's own is 0008. Delete this file when merging (that branch's 0007 replaces it).
SELECT 1;
