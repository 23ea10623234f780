-- Per-key limits and monthly budgets, and spend on usage. Money is INTEGER nano-USD
-- (billionths of a dollar) wherever it is summed. Rate limits and concurrency are kept in the
-- process's memory with SQLite (one process), so this backend has no tables for them.
ALTER TABLE api_keys ADD COLUMN characters_per_minute INTEGER;
ALTER TABLE api_keys ADD COLUMN max_concurrent INTEGER;
ALTER TABLE api_keys ADD COLUMN monthly_character_budget INTEGER;
ALTER TABLE api_keys ADD COLUMN monthly_spend_limit_usd REAL;

ALTER TABLE usage_events ADD COLUMN spend_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_segments ADD COLUMN spend_nanos INTEGER NOT NULL DEFAULT 0;

-- Each key's use per UTC calendar month, advanced in the transaction that writes its usage
-- events: a budget check reads one row instead of summing a month of events.
CREATE TABLE key_months (
    key_id      TEXT NOT NULL REFERENCES api_keys (id),
    month       TEXT NOT NULL,                 -- YYYY-MM, UTC
    characters  INTEGER NOT NULL DEFAULT 0,
    spend_nanos INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, month)
);
