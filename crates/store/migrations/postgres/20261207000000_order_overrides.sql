-- Edit and retry: ShipStation-side fields an operator set on one order in shipledger
-- (carrier, service, package, confirmation, warehouse, internal notes), applied to
-- every push of that order. The ERP's business data is never kept here.
CREATE TABLE order_overrides (
    connection  TEXT    NOT NULL REFERENCES connections (name),
    erp_id      TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    set_by      TEXT    NOT NULL,
    set_at      BIGINT  NOT NULL,
    PRIMARY KEY (connection, erp_id, field)
);
