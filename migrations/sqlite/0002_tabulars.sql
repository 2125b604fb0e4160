-- Tables and views: pointer, current metadata (zstd-compressed JSON) and a compare-and-swap version.
CREATE TABLE tabulars (
    id                 BLOB PRIMARY KEY,
    warehouse_id       BLOB NOT NULL REFERENCES warehouses (id),
    ref_id             BLOB NOT NULL REFERENCES refs (id),
    namespace_id       BLOB NOT NULL REFERENCES namespaces (id),
    name               TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('table', 'view')),
    uuid               BLOB NOT NULL,
    location           TEXT NOT NULL,
    metadata_location  TEXT NOT NULL,
    metadata           BLOB NOT NULL,
    version            INTEGER NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (namespace_id, name)
);

CREATE INDEX tabulars_by_ref ON tabulars (ref_id);
CREATE INDEX tabulars_by_warehouse ON tabulars (warehouse_id);
