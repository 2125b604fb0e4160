-- S3 access keys of the built-in gateway (admin keys of one warehouse). The secret is not stored:
-- it is derived from the key id with the server's key, so this table only says which ids are valid.
CREATE TABLE access_keys (
    id            TEXT PRIMARY KEY,
    warehouse_id  UUID NOT NULL REFERENCES warehouses (id),
    description   TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ
);

CREATE INDEX access_keys_by_warehouse ON access_keys (warehouse_id, created_at);
