-- Recurring passes per connection (ERP poll, recheck, follow, shipment poll, scan
-- sweep, monitors), leased like jobs so that N workers on one database run each pass
-- once per interval. Times are INTEGER epoch milliseconds.
--
-- next_due_at NULL: never run, due now. A lease is (lease_token, lease_until); a
-- lease whose lease_until has passed belongs to a worker that died and may be taken
-- over. runs counts the passes finished (worked or not).
CREATE TABLE schedules (
    connection       TEXT    NOT NULL REFERENCES connections (name),
    name             TEXT    NOT NULL,
    next_due_at      INTEGER,
    lease_token      TEXT,
    lease_until      INTEGER,
    last_started_at  INTEGER,
    last_success_at  INTEGER,
    last_error       TEXT,
    runs             INTEGER  NOT NULL DEFAULT 0,
    updated_at       INTEGER  NOT NULL,
    PRIMARY KEY (connection, name)
);
