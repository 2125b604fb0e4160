-- A notification of a commit that only moved a table's or view's pointer carries the version it
-- moved to (`<id>:<version>`), so the instance that made the commit, whose cache already holds
-- that version, keeps it; other instances, which hold an older one, forget it. Any other change
-- (create, rename, drop) still names the row alone and is forgotten everywhere.
CREATE OR REPLACE FUNCTION floe_notify_tabular_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('floe_tabulars', OLD.id::text);
    ELSIF TG_OP = 'UPDATE' AND OLD.name = NEW.name AND OLD.namespace_id = NEW.namespace_id
          AND OLD.ref_id = NEW.ref_id THEN
        PERFORM pg_notify('floe_tabulars', NEW.id::text || ':' || NEW.version::text);
    ELSE
        PERFORM pg_notify('floe_tabulars', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- The metadata column holds zstd-compressed bytes: TOAST's own compression (pglz) only burns CPU
-- trying to shrink them again (an eighth of the machine's CPU under a stream of commits). Stored
-- out of line, uncompressed, from now on.
ALTER TABLE tabulars ALTER COLUMN metadata SET STORAGE EXTERNAL;

-- Locations compare byte by byte, so that what lies inside a folder is one range of the location
-- index (`folder/` up to `folder0`) whatever the database's default collation.
ALTER TABLE tabulars ALTER COLUMN location TYPE TEXT COLLATE "C";
