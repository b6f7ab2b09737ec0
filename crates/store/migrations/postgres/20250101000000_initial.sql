-- shipledger store, PostgreSQL. Times are BIGINT epoch milliseconds; JSON is JSONB.

CREATE TABLE connections (
    name        TEXT    PRIMARY KEY NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE orders (
    connection      TEXT    NOT NULL REFERENCES connections (name),
    erp_id          TEXT    NOT NULL,
    number          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    snapshot        JSONB   NOT NULL,
    snapshot_hash   TEXT    NOT NULL,
    erp_updated_at  BIGINT  NOT NULL,
    order_key       TEXT    NOT NULL,
    ss_order_id     BIGINT,
    ss_status       TEXT,
    payment         JSONB,
    pushed_hash     TEXT,
    released_at     BIGINT,
    pushed_at       BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
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
    quantity          BIGINT  NOT NULL,
    unit_weight_mg    BIGINT,
    unit_price_minor  BIGINT  NOT NULL,
    currency          TEXT    NOT NULL,
    physical          BOOLEAN NOT NULL,
    PRIMARY KEY (connection, erp_id, line_id),
    FOREIGN KEY (connection, erp_id) REFERENCES orders (connection, erp_id) ON DELETE CASCADE
);

CREATE TABLE jobs (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection       TEXT    NOT NULL REFERENCES connections (name),
    kind             TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    payload          JSONB   NOT NULL,
    state            TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_run_at      BIGINT  NOT NULL,
    lease_until      BIGINT,
    lease_token      TEXT,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    UNIQUE (connection, idempotency_key)
);

-- Claiming: runnable jobs of a kind, oldest first.
CREATE INDEX jobs_claimable ON jobs (kind, state, next_run_at);

CREATE TABLE watermarks (
    connection  TEXT    NOT NULL REFERENCES connections (name),
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (connection, name)
);

-- Append-only.
CREATE TABLE events (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection   TEXT    NOT NULL REFERENCES connections (name),
    record_type  TEXT    NOT NULL,
    record_id    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    detail       JSONB   NOT NULL,
    at           BIGINT  NOT NULL
);

CREATE INDEX events_by_record ON events (connection, record_type, record_id);

CREATE TABLE exceptions (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection   TEXT    NOT NULL REFERENCES connections (name),
    kind         TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    record_type  TEXT    NOT NULL,
    record_id    TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    first_seen   BIGINT  NOT NULL,
    last_seen    BIGINT  NOT NULL,
    occurrences  BIGINT  NOT NULL,
    detail       JSONB   NOT NULL,
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
    limit_      BIGINT  NOT NULL,
    remaining   BIGINT  NOT NULL,
    reset_at    BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
