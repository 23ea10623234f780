-- Per-key limits and monthly budgets, spend on usage, and the state that makes limits hold
-- across replicas. Money is BIGINT nano-USD (billionths of a dollar) wherever it is summed.
ALTER TABLE api_keys ADD COLUMN characters_per_minute BIGINT;
ALTER TABLE api_keys ADD COLUMN max_concurrent BIGINT;
ALTER TABLE api_keys ADD COLUMN monthly_character_budget BIGINT;
ALTER TABLE api_keys ADD COLUMN monthly_spend_limit_usd DOUBLE PRECISION;

ALTER TABLE usage_events ADD COLUMN spend_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_segments ADD COLUMN spend_nanos BIGINT NOT NULL DEFAULT 0;

-- Each key's use per UTC calendar month, advanced in the transaction that writes its usage
-- events: a budget check reads one row instead of summing a month of events.
CREATE TABLE key_months (
    key_id      TEXT NOT NULL REFERENCES api_keys (id),
    month       TEXT NOT NULL,                 -- YYYY-MM, UTC
    characters  BIGINT NOT NULL DEFAULT 0,
    spend_nanos BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, month)
);

-- Sliding-window counters shared by replicas: how much of a key's limit (`kind`: requests or
-- characters) was used in the minute starting at `window_start` (Unix ms). Rows older than two
-- minutes are no longer read and are deleted now and then.
CREATE TABLE rate_windows (
    key_id       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    PRIMARY KEY (key_id, kind, window_start)
);

-- Requests in progress per key across replicas: one JSON object per key mapping lease ids to
-- the Unix ms at which each lapses. Leases are renewed while their request runs, so those of a
-- replica that died lapse on their own.
CREATE TABLE key_leases (
    key_id TEXT PRIMARY KEY,
    leases JSONB NOT NULL DEFAULT '{}'
);
