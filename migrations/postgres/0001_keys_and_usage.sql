-- Times are Unix milliseconds (UTC) in both backends, so rows map to the same Rust types.
CREATE TABLE api_keys (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    scopes                TEXT NOT NULL,            -- comma-separated scope slugs
    secret_sha256         BYTEA NOT NULL,           -- SHA-256 of the secret; the secret itself is never stored
    rate_limit_per_minute BIGINT,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT,
    revoked_at            BIGINT,
    last_used_at          BIGINT
);

CREATE TABLE usage_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  TEXT NOT NULL,                 -- not unique: clients may propagate their own ids
    key_id      TEXT REFERENCES api_keys (id),
    route       TEXT NOT NULL,
    method      TEXT NOT NULL,
    provider    TEXT,
    model       TEXT,
    voice       TEXT,
    characters  BIGINT NOT NULL DEFAULT 0,
    audio_ms    BIGINT NOT NULL DEFAULT 0,
    bytes_out   BIGINT NOT NULL DEFAULT 0,
    status      BIGINT NOT NULL,
    error_code  TEXT,
    latency_ms  BIGINT NOT NULL,
    ttfb_ms     BIGINT,
    created_at  BIGINT NOT NULL
);

CREATE INDEX usage_events_key_time ON usage_events (key_id, created_at);
CREATE INDEX usage_events_time ON usage_events (created_at);
CREATE INDEX usage_events_request ON usage_events (request_id);
