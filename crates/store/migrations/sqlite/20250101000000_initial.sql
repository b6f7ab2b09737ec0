-- shipledger store, SQLite. Times are INTEGER epoch milliseconds; JSON is TEXT.

CREATE TABLE connections (
    name        TEXT    PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE orders (
    connection      TEXT    NOT NULL REFERENCES connections (name),
    erp_id          TEXT    NOT NULL,
    number          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    snapshot        TEXT    NOT NULL,
    snapshot_hash   TEXT    NOT NULL,
    erp_updated_at  INTEGER NOT NULL,
    order_key       TEXT    NOT NULL,
    ss_order_id     INTEGER,
    ss_status       TEXT,
    payment         TEXT,
    pushed_hash     TEXT,
    released_at     INTEGER,
    pushed_at       INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (connection, erp_id),
    UNIQUE (connection, order_key)
);

CREATE INDEX orders_by_state ON orders (connection, state);

CREATE TABLE order_lines (
    connection        TEXT    NOT NULL REFERENCES connections (name),
    erp_id            TEXT    NOT NULL,
    line_id           TEXT    NOT NULL,
    sku               TEXT,
    name              TEXT    NOT NULL,
    quantity          INTEGER NOT NULL,
    unit_weight_mg    INTEGER,
    unit_price_minor  INTEGER NOT NULL,
    currency          TEXT    NOT NULL,
    physical          INTEGER NOT NULL,
    PRIMARY KEY (connection, erp_id, line_id),
    FOREIGN KEY (connection, erp_id) REFERENCES orders (connection, erp_id) ON DELETE CASCADE
);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connection       TEXT    NOT NULL REFERENCES connections (name),
    kind             TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_run_at      INTEGER NOT NULL,
    lease_until      INTEGER,
    lease_token      TEXT,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (connection, idempotency_key)
);

-- Claiming: runnable jobs of a kind, oldest first.
CREATE INDEX jobs_claimable ON jobs (kind, state, next_run_at);

CREATE TABLE watermarks (
    connection  TEXT    NOT NULL REFERENCES connections (name),
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (connection, name)
);

-- Append-only.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection   TEXT    NOT NULL REFERENCES connections (name),
    record_type  TEXT    NOT NULL,
    record_id    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    detail       TEXT    NOT NULL,
    at           INTEGER NOT NULL
);

CREATE INDEX events_by_record ON events (connection, record_type, record_id);

CREATE TABLE exceptions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection   TEXT    NOT NULL REFERENCES connections (name),
    kind         TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    record_type  TEXT    NOT NULL,
    record_id    TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    occurrences  INTEGER NOT NULL,
    detail       TEXT    NOT NULL,
    note         TEXT
);

-- At most one open exception of a kind per record.
CREATE UNIQUE INDEX exceptions_one_open
    ON exceptions (connection, kind, record_type, record_id)
    WHERE state = 'open';

CREATE INDEX exceptions_by_state ON exceptions (connection, state, owner);
CREATE INDEX exceptions_by_record ON exceptions (connection, record_type, record_id);

-- The shared ShipStation rate budget, one row per API key.
CREATE TABLE rate_budgets (
    key         TEXT    PRIMARY KEY NOT NULL,
    limit_      INTEGER NOT NULL,
    remaining   INTEGER NOT NULL,
    reset_at    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
