-- Projects own keys, saved voices, PlayHT jobs and provider credentials, so that a key can be
-- revoked or rotated without orphaning what was made with it. Every key that exists when this
-- runs gets a project of its own (named after it), and its voices and jobs move there: no key
-- sees another's voices after the upgrade, exactly as before it.
CREATE TABLE projects (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

INSERT INTO projects (id, name, created_at) SELECT 'prj_' || id, name, created_at FROM api_keys;

-- SQLite adds a column with a foreign key only when its default is NULL: the triggers below
-- make the column required all the same (the keys table is not rebuilt, so that columns other
-- migrations add to it stay as they are).
ALTER TABLE api_keys ADD COLUMN project_id TEXT REFERENCES projects (id);
UPDATE api_keys SET project_id = 'prj_' || id;
CREATE INDEX api_keys_project ON api_keys (project_id, created_at);

CREATE TRIGGER api_keys_project_required_on_insert BEFORE INSERT ON api_keys
WHEN NEW.project_id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: api_keys.project_id');
END;

CREATE TRIGGER api_keys_project_required_on_update BEFORE UPDATE OF project_id ON api_keys
WHEN NEW.project_id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: api_keys.project_id');
END;

-- Voices and jobs belong to a project instead of a key: both tables are rebuilt with the new
-- owner column (nothing refers to them).
CREATE TABLE voices_new (
    id               TEXT PRIMARY KEY NOT NULL,        -- UUID v7
    project_id       TEXT NOT NULL REFERENCES projects (id),
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

INSERT INTO voices_new (id, project_id, title, provider, model, voice_id, tags, gender, description,
                        provider_options, created_at, updated_at)
SELECT v.id, k.project_id, v.title, v.provider, v.model, v.voice_id, v.tags, v.gender, v.description,
       v.provider_options, v.created_at, v.updated_at
FROM voices v JOIN api_keys k ON k.id = v.owner_key_id;

DROP TABLE voices;
ALTER TABLE voices_new RENAME TO voices;

-- A title names one voice among its project's; a unique violation here is a 409.
CREATE UNIQUE INDEX voices_project_title ON voices (project_id, title);
-- Lists page newest first by (created_at, id).
CREATE INDEX voices_project_created ON voices (project_id, created_at, id);

CREATE TABLE tts_jobs_new (
    id           TEXT PRIMARY KEY,                  -- UUID v7
    project_id   TEXT NOT NULL REFERENCES projects (id),
    request      TEXT NOT NULL,                     -- the job's input as the client sent it (JSON)
    media_type   TEXT NOT NULL,
    duration_ms  INTEGER NOT NULL,
    audio        BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);

INSERT INTO tts_jobs_new (id, project_id, request, media_type, duration_ms, audio, created_at)
SELECT j.id, k.project_id, j.request, j.media_type, j.duration_ms, j.audio, j.created_at
FROM tts_jobs j JOIN api_keys k ON k.id = j.owner_key_id;

DROP TABLE tts_jobs;
ALTER TABLE tts_jobs_new RENAME TO tts_jobs;

-- Expiry deletes by age; a project's quota counts its jobs of the last day.
CREATE INDEX tts_jobs_created ON tts_jobs (created_at);
CREATE INDEX tts_jobs_project_created ON tts_jobs (project_id, created_at);

-- Usage keeps the key that made each request and gains its project.
ALTER TABLE usage_events ADD COLUMN project_id TEXT REFERENCES projects (id);
UPDATE usage_events SET project_id = (SELECT k.project_id FROM api_keys k WHERE k.id = usage_events.key_id)
WHERE key_id IS NOT NULL;
CREATE INDEX usage_events_project_time ON usage_events (project_id, created_at);

-- A project's own vendor keys (`PUT /v1/api-keys/{providerId}`), sealed with AES-256-GCM under
-- the operator's master key; the project and provider ids are the associated data, so a sealed
-- value copied to another row does not open.
CREATE TABLE provider_credentials (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    provider    TEXT NOT NULL,
    nonce       BLOB NOT NULL,                      -- 96 bits, random per value
    ciphertext  BLOB NOT NULL,                      -- the key, encrypted, then the 128-bit tag
    master_key  TEXT NOT NULL,                      -- fingerprint of the master key that sealed it
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, provider)
);
