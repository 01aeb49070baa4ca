-- 0012: the language of a server's public messages (cards, posts, notices, the moderator
-- log, /stats).
--
-- * guild_settings.language: chosen by a moderator with /config language (a locale code
--   the bot has a catalog for); NULL = follow the server's Discord language.
-- * guild_settings.discord_locale: the server's Discord language (an interaction's
--   guild_locale) as last seen, so background work posting later knows it.

ALTER TABLE guild_settings ADD COLUMN language TEXT;
ALTER TABLE guild_settings ADD COLUMN discord_locale TEXT;
