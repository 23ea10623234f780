-- One line per provider call when a request made several (a conversation's turns), so that
-- characters and audio are attributed to each provider and model exactly. A request that made at
-- most one call has no lines here: its usage_events row describes it.
CREATE TABLE usage_segments (
    event_seq   BIGINT NOT NULL REFERENCES usage_events (seq) ON DELETE CASCADE,
    idx         BIGINT NOT NULL,               -- the call's position in its request (a turn index)
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    voice       TEXT NOT NULL,
    characters  BIGINT NOT NULL DEFAULT 0,
    audio_ms    BIGINT NOT NULL DEFAULT 0,
    error_code  TEXT,                          -- why this call failed, when it did
    PRIMARY KEY (event_seq, idx)               -- also serves the lookups by event
);
