-- The cost ledger: one immutable row per charge of a label (postage, insurance, other),
-- in the currency the charge was made in. Rows are only ever inserted (insert-or-ignore
-- by (connection, entry_key)); the triggers below refuse any UPDATE or DELETE.
-- Times are INTEGER epoch milliseconds; ship_date is TEXT YYYY-MM-DD.
--
-- What later slices add *alongside*, never into a row of this table:
--   cost_conversions (connection, entry_id REFERENCES cost_entries (id) PRIMARY KEY,
--                     base_currency, base_minor, rate TEXT (exact decimal), rate_date,
--                     rate_source, rounding, converted_at)
--     one row per converted entry, inserted once its rate is known;
--   cost_batches (id, connection, window_start, window_end, revision, state, ...) and
--   cost_batch_entries (batch_id, entry_id UNIQUE, carried_over)
--     an entry's membership in the journal that posts it.
-- An entry waiting for a rate, or for its batch, is one without those rows.

CREATE TABLE cost_entries (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    connection        TEXT    NOT NULL REFERENCES connections (name),
    entry_key         TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    charge            TEXT    NOT NULL,
    revision          INTEGER NOT NULL,
    amount_minor      INTEGER NOT NULL,
    currency          TEXT    NOT NULL,
    shipment_key      TEXT    NOT NULL,
    erp_id            TEXT,
    ss_order_id       INTEGER NOT NULL,
    carrier           TEXT    NOT NULL,
    service           TEXT,
    ship_date         TEXT,
    label_created_at  INTEGER NOT NULL,
    occurred_at       INTEGER NOT NULL,
    source            TEXT    NOT NULL,
    reverses_id       INTEGER REFERENCES cost_entries (id),
    recorded_at       INTEGER NOT NULL,
    UNIQUE (connection, entry_key)
);

CREATE INDEX cost_entries_by_label_time ON cost_entries (connection, label_created_at, id);
CREATE INDEX cost_entries_by_shipment ON cost_entries (connection, shipment_key);
CREATE INDEX cost_entries_by_erp_order ON cost_entries (connection, erp_id);

CREATE TRIGGER cost_entries_never_updated BEFORE UPDATE ON cost_entries
BEGIN
    SELECT RAISE(ABORT, 'cost entries are immutable: add an entry instead of changing one');
END;

CREATE TRIGGER cost_entries_never_deleted BEFORE DELETE ON cost_entries
BEGIN
    SELECT RAISE(ABORT, 'cost entries are immutable: add a reversing entry instead of deleting one');
END;
