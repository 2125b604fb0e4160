-- Secrets kept outside the catalog database (issue 20: Vault's KV v2). The database holds only
-- where each one is: the store, the mount and path, and the version the catalog uses. Writing a
-- new version and then moving this row to it is what makes a credential change atomic: until
-- the row moves, every reader keeps the previous version.
CREATE TABLE secret_refs (
    id          UUID PRIMARY KEY,
    store       TEXT NOT NULL,
    mount       TEXT NOT NULL,
    path        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
