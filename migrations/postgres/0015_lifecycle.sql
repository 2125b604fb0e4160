-- Lifecycle (issue 23): delete profiles, soft-deleted tables and views, protection, and the
-- durable task queue. Times the queue compares are unix milliseconds (the same on both backends).

-- `{"type": "hard"}` or `{"type": "soft", "expiration-seconds": N}`.
ALTER TABLE warehouses ADD COLUMN delete_profile TEXT NOT NULL DEFAULT '{"type":"hard"}';
-- Table maintenance (`model::lifecycle::MaintenancePolicy`), off by default.
ALTER TABLE warehouses ADD COLUMN maintenance TEXT NOT NULL DEFAULT '{"enabled":false}';

-- A table or view dropped under a soft delete profile: gone from its line, its files kept, until
-- it is undropped (onto the same line) or its expiry task forgets it (and purges it when the drop
-- asked for that). `metadata` is the compressed metadata it had, so an undrop is one insert.
CREATE TABLE deleted_tabulars (
    id                 UUID PRIMARY KEY,
    warehouse_id       UUID NOT NULL REFERENCES warehouses (id) ON DELETE CASCADE,
    line_id            UUID NOT NULL REFERENCES refs (id) ON DELETE CASCADE,
    namespace          TEXT COLLATE "C" NOT NULL,
    name               TEXT COLLATE "C" NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('table', 'view')),
    uuid               UUID NOT NULL,
    location           TEXT NOT NULL,
    metadata_location  TEXT NOT NULL,
    metadata           BYTEA NOT NULL,
    -- The namespaces a recursive drop removed with it (JSON: joined name -> properties), so an
    -- undrop can bring them back.
    namespaces         TEXT NOT NULL,
    purge              BOOLEAN NOT NULL,
    deleted_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    deleted_by         TEXT NOT NULL,
    task_id            UUID
);

CREATE INDEX deleted_tabulars_by_warehouse ON deleted_tabulars (warehouse_id, namespace, name, id);

-- Protected objects: a warehouse (key ''), a namespace (its joined name, on every line), a table
-- or view (its UUID, on every line). Dropping one, or what contains one, needs `force`.
CREATE TABLE protections (
    warehouse_id  UUID NOT NULL REFERENCES warehouses (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('warehouse', 'namespace', 'table', 'view')),
    key           TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (warehouse_id, kind, key)
);

-- The task queue. A worker claims a due task (`FOR UPDATE SKIP LOCKED` on PostgreSQL), marks it
-- running with its name and a heartbeat, and keeps heartbeating; a running task whose heartbeat is
-- older than the stale limit is taken up again by another worker. `failures` counts the failed
-- attempts since the task was last (re)started, which its backoff and attempt limit follow;
-- `attempts` numbers every attempt ever made, for the log.
CREATE TABLE tasks (
    id                UUID PRIMARY KEY,
    warehouse_id      UUID NOT NULL REFERENCES warehouses (id) ON DELETE CASCADE,
    queue             TEXT NOT NULL,
    target            TEXT COLLATE "C" NOT NULL,
    payload           TEXT NOT NULL,
    status            TEXT NOT NULL
        CHECK (status IN ('scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts          INTEGER NOT NULL,
    failures          INTEGER NOT NULL,
    max_attempts      INTEGER NOT NULL,
    scheduled_at      BIGINT NOT NULL,
    heartbeat_at      BIGINT,
    worker            TEXT,
    cancel_requested  BOOLEAN NOT NULL,
    progress          TEXT,
    last_error        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE INDEX tasks_due ON tasks (queue, status, scheduled_at);
CREATE INDEX tasks_by_warehouse ON tasks (warehouse_id, created_at, id);
CREATE INDEX tasks_by_target ON tasks (warehouse_id, target);
-- At most one pending maintenance task per table, whichever instance enqueues it.
CREATE UNIQUE INDEX tasks_one_pending_maintenance ON tasks (warehouse_id, target)
    WHERE queue = 'maintenance' AND status IN ('scheduled', 'running');

CREATE TABLE task_attempts (
    task_id      UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    worker       TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    outcome      TEXT NOT NULL
        CHECK (outcome IN ('running', 'succeeded', 'failed', 'abandoned', 'cancelled')),
    message      TEXT,
    PRIMARY KEY (task_id, attempt)
);
