-- Keys whose requests skip content moderation (`[moderation]`): trusted internal callers, or
-- texts already checked upstream. Set when the key is created (`moderationExempt`).
ALTER TABLE api_keys ADD COLUMN moderation_exempt BOOLEAN NOT NULL DEFAULT FALSE;
