-- The exception lifecycle (issue 13): open -> acknowledged -> resolved / ignored, or
-- closed by shipledger when its condition clears. An exception now carries who it is
-- assigned to, the job behind it (given up: `exceptions retry` re-arms it), when it
-- was acknowledged and when it ended. Every action on it, a person's or shipledger's,
-- is a row of `exception_actions` (who, when, what, before and after), written in the
-- same transaction as the change itself; the audit trail is never updated or deleted.
ALTER TABLE exceptions ADD COLUMN assignee TEXT;
ALTER TABLE exceptions ADD COLUMN job_id BIGINT;
ALTER TABLE exceptions ADD COLUMN acknowledged_at BIGINT;
ALTER TABLE exceptions ADD COLUMN ended_at BIGINT;

UPDATE exceptions SET ended_at = last_seen WHERE state <> 'open';

-- At most one live (open or acknowledged) exception of a kind per record: raising it
-- again refreshes that one, acknowledged or not.
DROP INDEX exceptions_one_open;
CREATE UNIQUE INDEX exceptions_one_live
    ON exceptions (connection, kind, record_type, record_id)
    WHERE state IN ('open', 'acknowledged');

-- An ignored exception keeps its kind from being raised again on its record.
CREATE INDEX exceptions_ignored
    ON exceptions (connection, kind, record_type, record_id)
    WHERE state = 'ignored';

CREATE INDEX exceptions_by_assignee ON exceptions (connection, assignee) WHERE assignee IS NOT NULL;

CREATE TABLE exception_actions (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exception_id  BIGINT  NOT NULL REFERENCES exceptions (id),
    connection    TEXT    NOT NULL,
    at            BIGINT  NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    before        JSONB   NOT NULL,
    after         JSONB   NOT NULL,
    note          TEXT
);

CREATE INDEX exception_actions_by_exception ON exception_actions (exception_id, id);
CREATE INDEX exception_actions_by_connection ON exception_actions (connection, at);

CREATE FUNCTION exception_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the exception audit trail is append-only';
END;
$$;

CREATE TRIGGER exception_actions_kept BEFORE UPDATE OR DELETE ON exception_actions
    FOR EACH ROW EXECUTE FUNCTION exception_actions_append_only();
