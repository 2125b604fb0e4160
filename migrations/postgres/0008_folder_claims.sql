-- Table and view folders stay claimed while anything may still reference their files: a folder a
-- table moved away from (its snapshots still live there), a dropped table a tag or branch still
-- reads, a dropped table not yet purged. A claim belongs to a table's UUID (the same on every
-- line); a new table or view may not take a folder that overlaps another UUID's claim. A purge
-- marks its table's claims released (`released_at`, unix milliseconds) before it deletes the
-- files; a released claim still holds its folder until every key vended for it has expired, then
-- it is deleted.
CREATE TABLE folder_claims (
    warehouse_id  UUID NOT NULL REFERENCES warehouses (id),
    location      TEXT COLLATE "C" NOT NULL,
    table_uuid    UUID NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('table', 'view')),
    released_at   BIGINT,
    PRIMARY KEY (warehouse_id, location, table_uuid)
);

CREATE INDEX folder_claims_by_uuid ON folder_claims (warehouse_id, table_uuid);

-- Every folder the history names (whether or not the table was purged since: nothing recorded
-- that, so the safe answer is kept), and every current row's.
INSERT INTO folder_claims (warehouse_id, location, table_uuid, kind)
SELECT DISTINCT r.warehouse_id, h.location, h.uuid, h.kind
FROM tabular_history h JOIN refs r ON r.id = h.line_id
ON CONFLICT DO NOTHING;
INSERT INTO folder_claims (warehouse_id, location, table_uuid, kind)
SELECT DISTINCT warehouse_id, location, uuid, kind FROM tabulars
ON CONFLICT DO NOTHING;
