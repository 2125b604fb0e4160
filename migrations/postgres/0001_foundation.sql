-- Floe's foundation schema (PostgreSQL). Names use the "C" collation so that paging by name orders
-- exactly as on SQLite.

CREATE TABLE projects (
    id          UUID PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE server_info (
    singleton           SMALLINT PRIMARY KEY CHECK (singleton = 1),
    server_id           UUID NOT NULL,
    default_project_id  UUID NOT NULL REFERENCES projects (id),
    bootstrapped_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE secrets (
    id          UUID PRIMARY KEY,
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE warehouses (
    id                    UUID PRIMARY KEY,
    project_id            UUID NOT NULL REFERENCES projects (id),
    name                  TEXT COLLATE "C" NOT NULL,
    storage_profile       JSONB NOT NULL,
    credential_secret_id  UUID,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, name)
);

-- Branches and tags of a warehouse. Every namespace, table and view belongs to one ref; today only
-- `main` exists.
CREATE TABLE refs (
    id            UUID PRIMARY KEY,
    warehouse_id  UUID NOT NULL REFERENCES warehouses (id),
    name          TEXT COLLATE "C" NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    created_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (warehouse_id, name)
);

-- `name` is the namespace's levels joined by U+001F; `parent_name` is its parent's ('' at the top).
CREATE TABLE namespaces (
    id            UUID PRIMARY KEY,
    warehouse_id  UUID NOT NULL REFERENCES warehouses (id),
    ref_id        UUID NOT NULL REFERENCES refs (id),
    name          TEXT COLLATE "C" NOT NULL,
    parent_name   TEXT COLLATE "C" NOT NULL,
    parent_id     UUID REFERENCES namespaces (id),
    properties    JSONB NOT NULL,
    version       BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (ref_id, name)
);

CREATE INDEX namespaces_by_parent ON namespaces (ref_id, parent_name, name);
CREATE INDEX namespaces_by_warehouse ON namespaces (warehouse_id);
CREATE INDEX namespaces_by_parent_id ON namespaces (parent_id);
