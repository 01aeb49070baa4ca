-- 0011: a job made by a video's Continue button is posted as a reply to that video.
--
-- * jobs.reply_to_message_id: the message the job's video is posted in reply to (the
--   video it continues); NULL for every other job.

ALTER TABLE jobs ADD COLUMN reply_to_message_id INTEGER;
