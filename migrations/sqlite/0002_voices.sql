-- Saved voices, one set per API key. Tags (an array) and provider options (an object) are JSON
-- text in both backends; times are Unix milliseconds (UTC).
CREATE TABLE voices (
    id               TEXT PRIMARY KEY NOT NULL,        -- UUID v7
    owner_key_id     TEXT NOT NULL REFERENCES api_keys (id),
    title            TEXT NOT NULL,
    provider         TEXT NOT NULL,
    model            TEXT,
    voice_id         TEXT NOT NULL,
    tags             TEXT NOT NULL DEFAULT '[]',
    gender           TEXT CHECK (gender IN ('male', 'female', 'neutral')),
    description      TEXT,
    provider_options TEXT NOT NULL DEFAULT '{}',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- A title names one voice among its owner's; a unique violation here is a 409.
CREATE UNIQUE INDEX voices_owner_title ON voices (owner_key_id, title);
-- Lists page newest first by (created_at, id).
CREATE INDEX voices_owner_created ON voices (owner_key_id, created_at, id);
