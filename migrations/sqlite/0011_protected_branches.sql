-- Branches of a warehouse that change only by merge (issue 18): writes to them are refused, and
-- merging into them needs its own relation (`merge_protected`).
CREATE TABLE protected_branches (
    warehouse_id  BLOB NOT NULL REFERENCES warehouses (id),
    name          TEXT NOT NULL,
    PRIMARY KEY (warehouse_id, name)
);
