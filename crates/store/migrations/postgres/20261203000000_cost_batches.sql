-- Cost batches: one row per journal shipledger plans for a connection's posting
-- window (DESIGN §7), keyed `{connection}/costs/{start}..{end}/r{revision}`. The row
-- keeps the journal exactly as planned (JSON), so the outbox job posts what was
-- decided and nothing else; its state moves planned -> posted (with the ERP's move
-- id, after reading it back) or planned -> withdrawn (its period closed before it
-- posted: its entries are free for the next open window). A posted batch never
-- changes again (the trigger below refuses it). Dates are TEXT YYYY-MM-DD; times
-- BIGINT epoch ms.
CREATE TABLE cost_batches (
    id             BIGSERIAL PRIMARY KEY,
    connection     TEXT    NOT NULL REFERENCES connections (name),
    batch_key      TEXT    NOT NULL,
    window_start   TEXT    NOT NULL,
    window_end     TEXT    NOT NULL,
    revision       BIGINT  NOT NULL,
    state          TEXT    NOT NULL,
    journal        JSONB   NOT NULL,
    base_currency  TEXT    NOT NULL,
    total_minor    BIGINT  NOT NULL,
    entry_count    BIGINT  NOT NULL,
    carried_over   BIGINT  NOT NULL,
    erp_move_id    TEXT,
    detail         TEXT,
    planned_at     BIGINT  NOT NULL,
    posted_at      BIGINT,
    updated_at     BIGINT  NOT NULL,
    UNIQUE (connection, batch_key)
);

CREATE INDEX cost_batches_by_state ON cost_batches (connection, state, window_start);

-- Which entries a batch holds. An entry is in at most one live batch (planned or
-- posted): the partial unique index refuses a second, so two planners racing on one
-- PostgreSQL cannot post an entry twice. A withdrawn batch's rows stay, not live.
CREATE TABLE cost_batch_entries (
    connection          TEXT    NOT NULL REFERENCES connections (name),
    batch_id            BIGINT  NOT NULL REFERENCES cost_batches (id),
    entry_id            BIGINT  NOT NULL REFERENCES cost_entries (id),
    entry_key           TEXT    NOT NULL,
    carried_from_start  TEXT,
    carried_from_end    TEXT,
    live                BIGINT  NOT NULL DEFAULT 1,
    PRIMARY KEY (batch_id, entry_id)
);

CREATE UNIQUE INDEX cost_batch_entries_one_live ON cost_batch_entries (entry_id) WHERE live = 1;
CREATE INDEX cost_batch_entries_by_key ON cost_batch_entries (connection, entry_key);

CREATE FUNCTION cost_batches_posted_stays_posted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'cost batches are kept: a withdrawn one stays as the record of why its entries moved';
    END IF;
    IF OLD.state = 'posted' THEN
        RAISE EXCEPTION 'a posted cost batch never changes: correct it with a later entry';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER cost_batches_kept BEFORE UPDATE OR DELETE ON cost_batches
    FOR EACH ROW EXECUTE FUNCTION cost_batches_posted_stays_posted();
