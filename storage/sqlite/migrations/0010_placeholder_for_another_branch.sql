-- 0010: a placeholder for another branch's migration (the loader refuses gaps).
SELECT 1;
