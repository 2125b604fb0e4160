-- Floe's foundation schema (SQLite). Ids are 16-byte BLOBs, times are RFC 3339 TEXT, JSON is TEXT.

CREATE TABLE projects (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE server_info (
    singleton           INTEGER PRIMARY KEY CHECK (singleton = 1),
    server_id           BLOB NOT NULL,
    default_project_id  BLOB NOT NULL REFERENCES projects (id),
    bootstrapped_at     TEXT NOT NULL
);

CREATE TABLE secrets (
    id          BLOB PRIMARY KEY,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE warehouses (
    id                    BLOB PRIMARY KEY,
    project_id            BLOB NOT NULL REFERENCES projects (id),
    name                  TEXT NOT NULL,
    storage_profile       TEXT NOT NULL,
    credential_secret_id  BLOB,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE refs (
    id            BLOB PRIMARY KEY,
    warehouse_id  BLOB NOT NULL REFERENCES warehouses (id),
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    created_at    TEXT NOT NULL,
    UNIQUE (warehouse_id, name)
);

CREATE TABLE namespaces (
    id            BLOB PRIMARY KEY,
    warehouse_id  BLOB NOT NULL REFERENCES warehouses (id),
    ref_id        BLOB NOT NULL REFERENCES refs (id),
    name          TEXT NOT NULL,
    parent_name   TEXT NOT NULL,
    parent_id     BLOB REFERENCES namespaces (id),
    properties    TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (ref_id, name)
);

CREATE INDEX namespaces_by_parent ON namespaces (ref_id, parent_name, name);
CREATE INDEX namespaces_by_warehouse ON namespaces (warehouse_id);
CREATE INDEX namespaces_by_parent_id ON namespaces (parent_id);
