-- Idempotency keys of catalog mutations (the Iceberg REST spec's `Idempotency-Key`), per
-- caller: a request with a key runs once; its final outcome (a 2xx or 4xx answer) is kept and
-- answered again to retries until `expires_at`. A key being run is `running` under its
-- instance's lease: a duplicate waits for it, and takes it over when the lease has passed (its
-- instance died). `fingerprint` (method, path, query and body) tells a retry from a reuse of the
-- key for another request, which is refused. Times are unix milliseconds.
CREATE TABLE idempotency_keys (
    principal     TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('running', 'done')),
    owner         TEXT NOT NULL,
    lease_until   BIGINT NOT NULL,
    status        INTEGER,
    headers       TEXT,
    body          BYTEA,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
