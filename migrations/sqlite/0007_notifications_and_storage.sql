-- Nothing for SQLite (see 0005). Kept so both backends have the same migration numbers.
SELECT 1;
