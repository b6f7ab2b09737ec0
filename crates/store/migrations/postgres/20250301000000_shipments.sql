-- Shipments seen in ShipStation: labels and fulfillments, one row per shipment however
-- often it is seen. Times are BIGINT epoch milliseconds; ship_date is TEXT
-- YYYY-MM-DD; lines are JSONB.

CREATE TABLE shipments (
    connection          TEXT    NOT NULL REFERENCES connections (name),
    shipment_key        TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    ss_id               BIGINT  NOT NULL,
    ss_order_id         BIGINT  NOT NULL,
    ss_order_key        TEXT,
    erp_id              TEXT,
    carrier             TEXT    NOT NULL,
    service             TEXT,
    tracking_number     TEXT,
    ship_date           TEXT,
    cost_minor          BIGINT,
    cost_currency       TEXT,
    ss_created_at       BIGINT  NOT NULL,
    voided              BOOLEAN NOT NULL,
    voided_at           BIGINT,
    lines               JSONB   NOT NULL,
    first_scan_at       BIGINT,
    tracking_status     TEXT,
    state               TEXT    NOT NULL,
    erp_fulfilment_id   TEXT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    PRIMARY KEY (connection, shipment_key)
);

CREATE INDEX shipments_by_erp_order ON shipments (connection, erp_id);
CREATE INDEX shipments_by_ss_order ON shipments (connection, ss_order_id);
CREATE INDEX shipments_by_tracking ON shipments (connection, tracking_number);

-- Live labels still waiting for the carrier's first scan, oldest first.
CREATE INDEX shipments_awaiting_scan ON shipments (connection, ss_created_at)
    WHERE kind = 'label' AND NOT voided AND first_scan_at IS NULL;
