-- 0008: a placeholder. The lead gave this number to another branch's migration; this
-- branch's own is 0009. Delete this file when merging (that branch's 0008 replaces it).
SELECT 1;
