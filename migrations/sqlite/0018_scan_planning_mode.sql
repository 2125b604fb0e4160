-- Where clients of a warehouse plan their scans (`server` or `client`), sent to them as
-- `scan-planning-mode` in each table's loadTable config (a table's own property wins); NULL says
-- nothing.
ALTER TABLE warehouses ADD COLUMN scan_planning_mode TEXT;
