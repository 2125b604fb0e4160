-- Tables and views. One row per table or view on a ref: its pointer (metadata_location), its
-- current metadata (zstd-compressed JSON, so loading is one indexed read), and a version counter
-- that every commit compares and swaps.
CREATE TABLE tabulars (
    id                 UUID PRIMARY KEY,
    warehouse_id       UUID NOT NULL REFERENCES warehouses (id),
    ref_id             UUID NOT NULL REFERENCES refs (id),
    namespace_id       UUID NOT NULL REFERENCES namespaces (id),
    name               TEXT COLLATE "C" NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('table', 'view')),
    uuid               UUID NOT NULL,
    location           TEXT NOT NULL,
    metadata_location  TEXT NOT NULL,
    metadata           BYTEA NOT NULL,
    version            BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    UNIQUE (namespace_id, name)
);

CREATE INDEX tabulars_by_ref ON tabulars (ref_id);
CREATE INDEX tabulars_by_warehouse ON tabulars (warehouse_id);
