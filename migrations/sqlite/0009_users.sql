-- Identity: users recorded on first successful authentication (or provisioned), the server's first
-- admin, and who created each gateway admin key.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    email         TEXT,
    kind          TEXT NOT NULL CHECK (kind IN ('human', 'machine')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    last_seen_at  TEXT
);

ALTER TABLE server_info ADD COLUMN admin_user_id TEXT;
ALTER TABLE access_keys ADD COLUMN created_by TEXT;
