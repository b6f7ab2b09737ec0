-- How each cost entry became the ERP's base currency: one immutable row per
-- (connection, entry_key), inserted once its rate is known (insert-or-ignore), never
-- updated or deleted (the triggers below refuse it). An entry without a row here is
-- waiting for a rate. Decimals (rates, the exact quotient) are TEXT so nothing is
-- rounded by the database; dates are TEXT YYYY-MM-DD; times INTEGER epoch ms.
CREATE TABLE cost_conversions (
    connection        TEXT    NOT NULL REFERENCES connections (name),
    entry_key         TEXT    NOT NULL,
    entry_id          INTEGER NOT NULL UNIQUE REFERENCES cost_entries (id),
    original_minor    INTEGER NOT NULL,
    original_currency TEXT    NOT NULL,
    base_minor        INTEGER NOT NULL,
    base_currency     TEXT    NOT NULL,
    rate_from         TEXT    NOT NULL,
    rate_to           TEXT    NOT NULL,
    rate_date         TEXT    NOT NULL,
    wanted_date       TEXT    NOT NULL,
    source            TEXT    NOT NULL,
    source_detail     TEXT    NOT NULL,
    rounding          TEXT    NOT NULL,
    exact             TEXT    NOT NULL,
    converted_at      INTEGER NOT NULL,
    PRIMARY KEY (connection, entry_key)
);

CREATE TRIGGER cost_conversions_never_updated BEFORE UPDATE ON cost_conversions
BEGIN
    SELECT RAISE(ABORT, 'cost conversions are immutable: a converted entry keeps the rate it was converted at');
END;

CREATE TRIGGER cost_conversions_never_deleted BEFORE DELETE ON cost_conversions
BEGIN
    SELECT RAISE(ABORT, 'cost conversions are immutable: a converted entry keeps the rate it was converted at');
END;
