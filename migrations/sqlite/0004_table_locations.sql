-- Table locations are looked up to refuse a table whose folder overlaps another table's (a key
-- vended for one table must never reach another's files).
CREATE INDEX tabulars_by_location ON tabulars (warehouse_id, location);
