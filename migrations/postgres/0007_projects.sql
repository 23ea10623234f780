-- Projects own keys, saved voices, PlayHT jobs and provider credentials, so that a key can be
-- revoked or rotated without orphaning what was made with it. Every key that exists when this
-- runs gets a project of its own (named after it), and its voices and jobs move there: no key
-- sees another's voices after the upgrade, exactly as before it.
CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

INSERT INTO projects (id, name, created_at) SELECT 'prj_' || id, name, created_at FROM api_keys;

ALTER TABLE api_keys ADD COLUMN project_id TEXT REFERENCES projects (id);
UPDATE api_keys SET project_id = 'prj_' || id;
ALTER TABLE api_keys ALTER COLUMN project_id SET NOT NULL;
CREATE INDEX api_keys_project ON api_keys (project_id, created_at);

-- Voices and jobs belong to a project instead of a key (dropping the key column drops the
-- indexes on it).
ALTER TABLE voices ADD COLUMN project_id TEXT REFERENCES projects (id);
UPDATE voices SET project_id = k.project_id FROM api_keys k WHERE k.id = voices.owner_key_id;
ALTER TABLE voices ALTER COLUMN project_id SET NOT NULL;
ALTER TABLE voices DROP COLUMN owner_key_id;
-- A title names one voice among its project's; a unique violation here is a 409.
CREATE UNIQUE INDEX voices_project_title ON voices (project_id, title);
-- Lists page newest first by (created_at, id).
CREATE INDEX voices_project_created ON voices (project_id, created_at, id);

ALTER TABLE tts_jobs ADD COLUMN project_id TEXT REFERENCES projects (id);
UPDATE tts_jobs SET project_id = k.project_id FROM api_keys k WHERE k.id = tts_jobs.owner_key_id;
ALTER TABLE tts_jobs ALTER COLUMN project_id SET NOT NULL;
ALTER TABLE tts_jobs DROP COLUMN owner_key_id;
-- A project's quota counts its jobs of the last day.
CREATE INDEX tts_jobs_project_created ON tts_jobs (project_id, created_at);

-- Usage keeps the key that made each request and gains its project.
ALTER TABLE usage_events ADD COLUMN project_id TEXT REFERENCES projects (id);
UPDATE usage_events SET project_id = k.project_id FROM api_keys k WHERE k.id = usage_events.key_id;
CREATE INDEX usage_events_project_time ON usage_events (project_id, created_at);

-- A project's own vendor keys (`PUT /v1/api-keys/{providerId}`), sealed with AES-256-GCM under
-- the operator's master key; the project and provider ids are the associated data, so a sealed
-- value copied to another row does not open.
CREATE TABLE provider_credentials (
    project_id  TEXT NOT NULL REFERENCES projects (id),
    provider    TEXT NOT NULL,
    nonce       BYTEA NOT NULL,                     -- 96 bits, random per value
    ciphertext  BYTEA NOT NULL,                     -- the key, encrypted, then the 128-bit tag
    master_key  TEXT NOT NULL,                      -- fingerprint of the master key that sealed it
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, provider)
);
