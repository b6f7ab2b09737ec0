-- The reconciler (issue 13). Its copies of what ShipStation and the ERP hold for a
-- connection, refreshed incrementally (ShipStation by modify-date windows, the ERP
-- by its change feed), so a daily run spends requests only on what changed; the
-- diff then reads them, and our ledger's orders, in pages sorted by ShipStation
-- order key. Keys sort as bytes (SQLite's BINARY), the order the diff merges them in.
--
--
-- A row's `body` is the diff's view of the record (shipledger_core::reconcile).
CREATE TABLE recon_ss_orders (
    connection   TEXT    NOT NULL,
    ss_order_id  INTEGER  NOT NULL,
    order_key    TEXT,
    -- The key the order is judged under: its own orderKey, a split child's parent's,
    -- a merged-away order's own order's key from our ledger, `ss:{id}` for none.
    root_key     TEXT    NOT NULL,
    parent_id    INTEGER,
    merged_into  INTEGER,
    modified_at  INTEGER  NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (connection, ss_order_id)
);
CREATE INDEX recon_ss_orders_by_key ON recon_ss_orders (connection, root_key, ss_order_id);
CREATE INDEX recon_ss_orders_by_parent ON recon_ss_orders (connection, parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE recon_ss_shipments (
    connection   TEXT    NOT NULL,
    shipment_id  INTEGER  NOT NULL,
    ss_order_id  INTEGER  NOT NULL,
    root_key     TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (connection, shipment_id)
);
CREATE INDEX recon_ss_shipments_by_key ON recon_ss_shipments (connection, root_key, shipment_id);
CREATE INDEX recon_ss_shipments_by_order ON recon_ss_shipments (connection, ss_order_id);

CREATE TABLE recon_erp_orders (
    connection   TEXT    NOT NULL,
    erp_id       TEXT    NOT NULL,
    order_key    TEXT    NOT NULL,
    updated_at   INTEGER  NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (connection, erp_id)
);
CREATE UNIQUE INDEX recon_erp_orders_by_key ON recon_erp_orders (connection, order_key);


-- One row per run: what it read, what it found, how it ended.
CREATE TABLE reconcile_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection   TEXT    NOT NULL,
    -- `full` or `incremental`.
    mode         TEXT    NOT NULL,
    since        INTEGER  NOT NULL,
    -- `running`, `done`, `failed`.
    state        TEXT    NOT NULL,
    started_at   INTEGER  NOT NULL,
    finished_at  INTEGER,
    stats        TEXT    NOT NULL,
    error        TEXT
);
CREATE INDEX reconcile_runs_by_connection ON reconcile_runs (connection, id);

-- What a run found: each finding once per run (the exception it opened or
-- refreshed carries the history).
CREATE TABLE reconcile_findings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER  NOT NULL REFERENCES reconcile_runs (id),
    connection   TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    record_type  TEXT    NOT NULL,
    record_id    TEXT    NOT NULL,
    detail       TEXT    NOT NULL
);
CREATE INDEX reconcile_findings_by_run ON reconcile_findings (run_id, id);
