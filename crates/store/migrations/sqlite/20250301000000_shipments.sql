-- Shipments seen in ShipStation: labels and fulfillments, one row per shipment however
-- often it is seen. Times are INTEGER epoch milliseconds; ship_date is TEXT
-- YYYY-MM-DD; lines are JSON TEXT; voided is 0/1.

CREATE TABLE shipments (
    connection          TEXT    NOT NULL REFERENCES connections (name),
    shipment_key        TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    ss_id               INTEGER NOT NULL,
    ss_order_id         INTEGER NOT NULL,
    ss_order_key        TEXT,
    erp_id              TEXT,
    carrier             TEXT    NOT NULL,
    service             TEXT,
    tracking_number     TEXT,
    ship_date           TEXT,
    cost_minor          INTEGER,
    cost_currency       TEXT,
    ss_created_at       INTEGER NOT NULL,
    voided              INTEGER NOT NULL,
    voided_at           INTEGER,
    lines               TEXT    NOT NULL,
    first_scan_at       INTEGER,
    tracking_status     TEXT,
    state               TEXT    NOT NULL,
    erp_fulfilment_id   TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (connection, shipment_key)
);

CREATE INDEX shipments_by_erp_order ON shipments (connection, erp_id);
CREATE INDEX shipments_by_ss_order ON shipments (connection, ss_order_id);
CREATE INDEX shipments_by_tracking ON shipments (connection, tracking_number);

-- Live labels still waiting for the carrier's first scan, oldest first.
CREATE INDEX shipments_awaiting_scan ON shipments (connection, ss_created_at)
    WHERE kind = 'label' AND NOT voided AND first_scan_at IS NULL;
