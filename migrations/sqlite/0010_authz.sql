-- Authorization: roles, and the relationships of the authorization model (authz/floe.fga):
-- grants (a user or a role's assignees has a relation on an object) and role assignments
-- (object role:<id>, relation assignee). Object and subject ids are text: the model's ids.
CREATE TABLE roles (
    id           BLOB PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE relationships (
    object_type       TEXT NOT NULL,
    object_id         TEXT NOT NULL,
    relation          TEXT NOT NULL,
    subject_type      TEXT NOT NULL,
    subject_id        TEXT NOT NULL,
    -- '' for a user, 'assignee' for a role's assignees
    subject_relation  TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    PRIMARY KEY (object_type, object_id, relation, subject_type, subject_id, subject_relation)
);

CREATE INDEX relationships_by_subject ON relationships (subject_type, subject_id, subject_relation);
