-- Vendors that bill tokens (Gemini, OpenAI's realtime models) report them; usage keeps them
-- beside the characters, per request and per provider call.
ALTER TABLE usage_events ADD COLUMN input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN output_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_segments ADD COLUMN input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_segments ADD COLUMN output_tokens BIGINT NOT NULL DEFAULT 0;
