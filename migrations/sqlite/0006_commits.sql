-- The branching index (docs/branching.md). A branch row of `refs` is a line: where one branch
-- writes. `head_seq` numbers the line's commits; a line forked from another names it and the seq
-- it forked at, and reads fall back to that point for names it never touched. A line outlives its
-- branch name (a reset or a deleted branch leaves a retired line, named `~<id>`, that old commits
-- still read through). A tag row names a commit (`head_commit`).
ALTER TABLE refs ADD COLUMN parent_id BLOB REFERENCES refs (id);
ALTER TABLE refs ADD COLUMN parent_seq INTEGER;
ALTER TABLE refs ADD COLUMN head_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refs ADD COLUMN head_commit BLOB;
ALTER TABLE refs ADD COLUMN head_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refs ADD COLUMN retired_at TEXT;





-- One row per catalog change (a multi-table transaction is one), append-only.
CREATE TABLE commits (
    id            BLOB PRIMARY KEY,
    warehouse_id  BLOB NOT NULL REFERENCES warehouses (id),
    line_id       BLOB NOT NULL REFERENCES refs (id),
    seq           INTEGER NOT NULL,
    parents       TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    message       TEXT NOT NULL,
    author        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    changes       TEXT NOT NULL,
    UNIQUE (line_id, seq)
);

-- What each commit did to each name: the state of a line at seq s is, per name, its latest entry
-- with seq <= s. Append-only.
CREATE TABLE tabular_history (
    line_id            BLOB NOT NULL REFERENCES refs (id),
    namespace          TEXT NOT NULL,
    name               TEXT NOT NULL,
    seq                INTEGER NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('table', 'view')),
    tabular_id         BLOB NOT NULL,
    uuid               BLOB NOT NULL,
    location           TEXT NOT NULL,
    metadata_location  TEXT NOT NULL,
    version            INTEGER NOT NULL,
    dropped            INTEGER NOT NULL,
    PRIMARY KEY (line_id, namespace, name, seq)
);

CREATE TABLE namespace_history (
    line_id     BLOB NOT NULL REFERENCES refs (id),
    name        TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    parent_name TEXT NOT NULL,
    properties  TEXT NOT NULL,
    dropped     INTEGER NOT NULL,
    PRIMARY KEY (line_id, name, seq)
);

-- Existing warehouses: a root commit on main, and their current state as its history.
INSERT INTO commits (id, warehouse_id, line_id, seq, parents, generation, message, author, created_at, changes)
SELECT randomblob(16), warehouse_id, id, 0, '[]', 0, 'initial state', 'floe', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), '[]'
FROM refs WHERE kind = 'branch';
UPDATE refs SET head_commit = (SELECT c.id FROM commits c WHERE c.line_id = refs.id AND c.seq = 0)
WHERE kind = 'branch';
INSERT INTO namespace_history (line_id, name, seq, parent_name, properties, dropped)
SELECT ref_id, name, 0, parent_name, properties, 0 FROM namespaces;
INSERT INTO tabular_history (line_id, namespace, name, seq, kind, tabular_id, uuid, location, metadata_location, version, dropped)
SELECT t.ref_id, n.name, t.name, 0, t.kind, t.id, t.uuid, t.location, t.metadata_location, t.version, 0
FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id;

-- Purge looks a table up by its UUID across lines, to keep files another branch still uses.
CREATE INDEX tabular_history_by_uuid ON tabular_history (uuid);
