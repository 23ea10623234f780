-- Times are Unix milliseconds (UTC) in both backends, so rows map to the same Rust types.
CREATE TABLE api_keys (
    id                    TEXT PRIMARY KEY NOT NULL,
    name                  TEXT NOT NULL,
    scopes                TEXT NOT NULL,            -- comma-separated scope slugs
    secret_sha256         BLOB NOT NULL,            -- SHA-256 of the secret; the secret itself is never stored
    rate_limit_per_minute INTEGER,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER,
    revoked_at            INTEGER,
    last_used_at          INTEGER
);

CREATE TABLE usage_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,                 -- not unique: clients may propagate their own ids
    key_id      TEXT REFERENCES api_keys (id),
    route       TEXT NOT NULL,
    method      TEXT NOT NULL,
    provider    TEXT,
    model       TEXT,
    voice       TEXT,
    characters  INTEGER NOT NULL DEFAULT 0,
    audio_ms    INTEGER NOT NULL DEFAULT 0,
    bytes_out   INTEGER NOT NULL DEFAULT 0,
    status      INTEGER NOT NULL,
    error_code  TEXT,
    latency_ms  INTEGER NOT NULL,
    ttfb_ms     INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE INDEX usage_events_key_time ON usage_events (key_id, created_at);
CREATE INDEX usage_events_time ON usage_events (created_at);
CREATE INDEX usage_events_request ON usage_events (request_id);
