-- The branching index (docs/branching.md). A branch row of `refs` is a line: where one branch
-- writes. `head_seq` numbers the line's commits; a line forked from another names it and the seq
-- it forked at, and reads fall back to that point for names it never touched. A line outlives its
-- branch name (a reset or a deleted branch leaves a retired line, named `~<id>`, that old commits
-- still read through). A tag row names a commit (`head_commit`).
ALTER TABLE refs ADD COLUMN parent_id UUID REFERENCES refs (id);
ALTER TABLE refs ADD COLUMN parent_seq BIGINT;
ALTER TABLE refs ADD COLUMN head_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refs ADD COLUMN head_commit UUID;
ALTER TABLE refs ADD COLUMN head_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refs ADD COLUMN retired_at TIMESTAMPTZ;





-- One row per catalog change (a multi-table transaction is one), append-only.
CREATE TABLE commits (
    id            UUID PRIMARY KEY,
    warehouse_id  UUID NOT NULL REFERENCES warehouses (id),
    line_id       UUID NOT NULL REFERENCES refs (id),
    seq           BIGINT NOT NULL,
    parents       TEXT NOT NULL,
    generation    BIGINT NOT NULL,
    message       TEXT NOT NULL,
    author        TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    changes       TEXT NOT NULL,
    UNIQUE (line_id, seq)
);

-- What each commit did to each name: the state of a line at seq s is, per name, its latest entry
-- with seq <= s. Append-only.
CREATE TABLE tabular_history (
    line_id            UUID NOT NULL REFERENCES refs (id),
    namespace          TEXT COLLATE "C" NOT NULL,
    name               TEXT COLLATE "C" NOT NULL,
    seq                BIGINT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('table', 'view')),
    tabular_id         UUID NOT NULL,
    uuid               UUID NOT NULL,
    location           TEXT NOT NULL,
    metadata_location  TEXT NOT NULL,
    version            BIGINT NOT NULL,
    dropped            BOOLEAN NOT NULL,
    PRIMARY KEY (line_id, namespace, name, seq)
);

CREATE TABLE namespace_history (
    line_id     UUID NOT NULL REFERENCES refs (id),
    name        TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    parent_name TEXT COLLATE "C" NOT NULL,
    properties  TEXT NOT NULL,
    dropped     BOOLEAN NOT NULL,
    PRIMARY KEY (line_id, name, seq)
);

-- Existing warehouses: a root commit on main, and their current state as its history.
INSERT INTO commits (id, warehouse_id, line_id, seq, parents, generation, message, author, created_at, changes)
SELECT gen_random_uuid(), warehouse_id, id, 0, '[]', 0, 'initial state', 'floe', now(), '[]'
FROM refs WHERE kind = 'branch';
UPDATE refs SET head_commit = (SELECT c.id FROM commits c WHERE c.line_id = refs.id AND c.seq = 0)
WHERE kind = 'branch';
INSERT INTO namespace_history (line_id, name, seq, parent_name, properties, dropped)
SELECT ref_id, name, 0, parent_name, properties::text, false FROM namespaces;
INSERT INTO tabular_history (line_id, namespace, name, seq, kind, tabular_id, uuid, location, metadata_location, version, dropped)
SELECT t.ref_id, n.name, t.name, 0, t.kind, t.id, t.uuid, t.location, t.metadata_location, t.version, false
FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id;

-- Purge looks a table up by its UUID across lines, to keep files another branch still uses.
CREATE INDEX tabular_history_by_uuid ON tabular_history (uuid);
