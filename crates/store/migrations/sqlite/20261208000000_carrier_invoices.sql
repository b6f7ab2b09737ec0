-- Carrier invoices: what a carrier billed, per parcel and charge, as imported by
-- `costs import-invoice`. An invoice is imported once per connection and carrier
-- (its number is unique there); importing the same content again changes nothing,
-- other content under a number already imported is refused. A charge is matched to
-- the label it bills by tracking number (shipment_key), or stays unmatched (NULL)
-- with a finance exception until a label with its tracking number is known. The
-- adjustments an invoice makes are cost entries of their own (kind
-- invoice_adjustment), never a change to a row here or in cost_entries.
CREATE TABLE carrier_invoices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    connection      TEXT    NOT NULL REFERENCES connections (name),
    carrier         TEXT    NOT NULL,
    invoice_number  TEXT    NOT NULL,
    invoice_date    TEXT    NOT NULL,
    file_name       TEXT    NOT NULL,
    content_sha256  TEXT    NOT NULL,
    imported_at     BIGINT  NOT NULL,
    UNIQUE (connection, carrier, invoice_number)
);

CREATE TABLE invoice_charges (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    connection      TEXT    NOT NULL REFERENCES connections (name),
    invoice_id      INTEGER NOT NULL REFERENCES carrier_invoices (id),
    row_number      BIGINT  NOT NULL,
    tracking_number TEXT    NOT NULL,
    charge_type     TEXT    NOT NULL,
    charge          TEXT    NOT NULL,
    amount_minor    BIGINT  NOT NULL,
    currency        TEXT    NOT NULL,
    shipment_key    TEXT,
    matched_at      BIGINT
);

CREATE INDEX invoice_charges_by_invoice ON invoice_charges (invoice_id, id);
CREATE INDEX invoice_charges_by_shipment ON invoice_charges (connection, shipment_key);
CREATE INDEX invoice_charges_by_tracking ON invoice_charges (connection, tracking_number);
