-- The outbox of change events (issue 20): each event is written in the transaction of the change
-- it describes, so none is lost, and the relay publishes the pending ones in `seq` order.
-- `published_at` marks what the publishers acknowledged; published events stay for
-- `events.retention_hours`, for the events feed.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            BLOB NOT NULL UNIQUE,
    event_key     TEXT NOT NULL,
    type          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    warehouse_id  BLOB,
    created_at    TEXT NOT NULL,
    body          TEXT NOT NULL,
    published_at  TEXT,
    -- The event's place in the events feed, given when it is published, in the order the
    -- relays' transactions commit (they take `event_feed`'s row lock to number), so a reader
    -- that has seen position N never later finds a smaller one appear.
    feed_seq      INTEGER
);
CREATE INDEX events_pending ON events (event_key, seq) WHERE published_at IS NULL;
CREATE INDEX events_published ON events (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX events_feed ON events (feed_seq) WHERE feed_seq IS NOT NULL;

-- The last position the events feed gave out.
CREATE TABLE event_feed (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_seq   INTEGER NOT NULL
);
INSERT INTO event_feed (singleton, last_seq) VALUES (1, 0);
