-- What the server records about itself beyond its bootstrap (issue 18): e.g. the OpenFGA store
-- and authorization model `floe migrate` wrote, which `floe serve` then uses.
CREATE TABLE server_settings (
    key    TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
);
