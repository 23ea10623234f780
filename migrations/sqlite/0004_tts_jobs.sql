-- PlayHT's v2 job API (`POST /playht/api/v2/tts`, `GET .../tts/{id}`): each job's request and
-- finished audio, kept for a day so that any replica can answer for it. Times are Unix
-- milliseconds (UTC).
CREATE TABLE tts_jobs (
    id           TEXT PRIMARY KEY,                  -- UUID v7
    owner_key_id TEXT NOT NULL REFERENCES api_keys (id),
    request      TEXT NOT NULL,                     -- the job's input as the client sent it (JSON)
    media_type   TEXT NOT NULL,
    duration_ms  INTEGER NOT NULL,
    audio        BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);

-- Expiry deletes by age; a key's quota counts its jobs of the last day.
CREATE INDEX tts_jobs_created ON tts_jobs (created_at);
CREATE INDEX tts_jobs_owner_created ON tts_jobs (owner_key_id, created_at);
