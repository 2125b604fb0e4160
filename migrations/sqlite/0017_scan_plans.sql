-- Server-side scan plans held for a client (the Iceberg REST spec's plan ids): a large scan is
-- `submitted` while an instance splits it into plan tasks, then `completed` with them in
-- `detail` (JSON), or `failed` with the error there; a client's cancel makes it `cancelled`.
-- Only the caller who submitted a plan (`principal`) sees it, and only on its table. A plan is
-- forgotten at `expires_at` (unix milliseconds). A plan is short-lived state, not history.
CREATE TABLE scan_plans (
    id           TEXT PRIMARY KEY,
    table_uuid   TEXT NOT NULL,
    principal    TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('submitted', 'completed', 'cancelled', 'failed')),
    detail       TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX scan_plans_expiry ON scan_plans (expires_at);
