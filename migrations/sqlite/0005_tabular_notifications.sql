-- Nothing for SQLite: one process owns the file and sees every change itself. (Kept so both
-- backends have the same migration numbers.)
SELECT 1;
