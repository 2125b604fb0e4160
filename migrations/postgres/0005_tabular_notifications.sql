-- Every committed change of a table or view notifies channel `floe_tabulars` with the row's id, so
-- each Floe instance can forget what it cached (the notification is sent when the transaction
-- commits, and not at all if it rolls back).
CREATE FUNCTION floe_notify_tabular_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('floe_tabulars', OLD.id::text);
    ELSE
        PERFORM pg_notify('floe_tabulars', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER tabulars_notify_changes
    AFTER INSERT OR UPDATE OR DELETE ON tabulars
    FOR EACH ROW EXECUTE FUNCTION floe_notify_tabular_change();
