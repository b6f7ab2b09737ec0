//! The SQL text both backends run, in one place. Placeholders are `$1, $2, ...` on
//! both (SQLite binds `$N` to the N-th argument). Where PostgreSQL needs a row lock
//! that SQLite does not (SQLite has one writer at a time), the statement is stamped
//! twice into a [`Dialect`], once per backend.
//!
//! Conventions: times are epoch milliseconds, enums are their `as_str()`/`code()`
//! text, JSON is bound as `serde_json::Value` (TEXT on SQLite, JSONB on PostgreSQL).

/// The statements that differ between the backends.
pub(crate) struct Dialect {
    /// Lease runnable jobs: `$1` kind, `$2` connection or NULL, `$3` now,
    /// `$4` lease_until, `$5` lease token, `$6` limit.
    pub claim_jobs: &'static str,
    /// The job a commit finishes, locked until the commit ends: `$1` id, `$2` connection.
    pub lock_job: &'static str,
    /// A rate budget row, locked until the transaction ends: `$1` key.
    pub lock_budget: &'static str,
}

macro_rules! order_columns {
    () => {
        "connection, erp_id, number, state, snapshot, snapshot_hash, erp_updated_at, \
         order_key, ss_order_id, ss_status, payment, pushed_hash, released_at, pushed_at, \
         created_at, updated_at"
    };
}

macro_rules! line_columns {
    () => {
        "connection, erp_id, line_id, sku, name, quantity, unit_weight_mg, \
         unit_price_minor, currency, physical"
    };
}

macro_rules! job_columns {
    () => {
        "id, connection, kind, idempotency_key, payload, state, attempts, next_run_at, \
         lease_until, lease_token, last_error, created_at, updated_at"
    };
}

macro_rules! event_columns {
    () => {
        "id, connection, record_type, record_id, kind, detail, at"
    };
}

macro_rules! exception_columns {
    () => {
        "id, connection, kind, owner, severity, record_type, record_id, state, \
         first_seen, last_seen, occurrences, detail, note, assignee, job_id, acknowledged_at, ended_at"
    };
}

macro_rules! shipment_columns {
    () => {
        "connection, shipment_key, kind, ss_id, ss_order_id, ss_order_key, erp_id, carrier, \
         service, tracking_number, ship_date, cost_minor, cost_currency, ss_created_at, \
         voided, voided_at, lines, first_scan_at, tracking_status, state, erp_fulfilment_id, \
         created_at, updated_at"
    };
}

macro_rules! dialect {
    (claim_lock: $claim_lock:literal, row_lock: $row_lock:literal) => {
        Dialect {
            claim_jobs: concat!(
                "UPDATE jobs
                    SET state = 'running',
                        attempts = attempts + 1,
                        lease_until = $4,
                        lease_token = $5,
                        updated_at = $3
                  WHERE id IN (
                        SELECT id FROM jobs
                         WHERE kind = $1
                           AND ($2 IS NULL OR connection = $2)
                           AND ((state = 'pending' AND next_run_at <= $3)
                             OR (state = 'running' AND lease_until <= $3))
                         ORDER BY next_run_at, id
                         LIMIT $6 ",
                $claim_lock,
                ")
                 RETURNING ",
                job_columns!()
            ),
            lock_job: concat!(
                "SELECT lease_token FROM jobs WHERE id = $1 AND connection = $2 ",
                $row_lock
            ),
            lock_budget: concat!(
                "SELECT remaining, reset_at FROM rate_budgets WHERE key = $1 ",
                $row_lock
            ),
        }
    };
}

/// SQLite: one writer at a time (`BEGIN IMMEDIATE`), so no row locks.
pub(crate) const SQLITE: Dialect = dialect!(claim_lock: "", row_lock: "");

/// PostgreSQL: many workers in many processes.
pub(crate) const POSTGRES: Dialect =
    dialect!(claim_lock: "FOR UPDATE SKIP LOCKED", row_lock: "FOR UPDATE");

// ---- connections

pub(crate) const ENSURE_CONNECTION: &str =
    "INSERT INTO connections (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

// ---- orders

pub(crate) const UPSERT_ORDER: &str = concat!(
    "INSERT INTO orders (",
    order_columns!(),
    ")
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
     ON CONFLICT (connection, erp_id) DO UPDATE SET
        number = excluded.number,
        state = excluded.state,
        snapshot = excluded.snapshot,
        snapshot_hash = excluded.snapshot_hash,
        erp_updated_at = excluded.erp_updated_at,
        order_key = excluded.order_key,
        ss_order_id = excluded.ss_order_id,
        ss_status = excluded.ss_status,
        payment = excluded.payment,
        pushed_hash = excluded.pushed_hash,
        released_at = excluded.released_at,
        pushed_at = excluded.pushed_at,
        updated_at = excluded.updated_at"
);

pub(crate) const DELETE_ORDER_LINES: &str =
    "DELETE FROM order_lines WHERE connection = $1 AND erp_id = $2";

pub(crate) const INSERT_ORDER_LINE: &str = concat!(
    "INSERT INTO order_lines (",
    line_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);

pub(crate) const GET_ORDER: &str = concat!(
    "SELECT ",
    order_columns!(),
    " FROM orders WHERE connection = $1 AND erp_id = $2"
);

pub(crate) const GET_ORDER_BY_KEY: &str = concat!(
    "SELECT ",
    order_columns!(),
    " FROM orders WHERE connection = $1 AND order_key = $2"
);

/// `$1` connection, `$2` state, `$3` number prefix (each NULL for any), `$4` limit,
/// `$5` offset. Newest first.
pub(crate) const LIST_ORDERS: &str = concat!(
    "SELECT ",
    order_columns!(),
    " FROM orders
     WHERE ($1 IS NULL OR connection = $1)
       AND ($2 IS NULL OR state = $2)
       AND ($3 IS NULL OR substr(number, 1, length($3)) = $3)
       AND ($4 IS NULL OR ss_order_id = $4)
     ORDER BY created_at DESC, connection, erp_id
     LIMIT $5 OFFSET $6"
);

pub(crate) const ORDER_LINES: &str = concat!(
    "SELECT ",
    line_columns!(),
    " FROM order_lines WHERE connection = $1 AND erp_id = $2 ORDER BY line_id"
);

pub(crate) const COUNT_ORDERS_BY_STATE: &str =
    "SELECT state, COUNT(*) AS n FROM orders WHERE connection = $1 GROUP BY state";

// ---- jobs

/// Plan a job unless its idempotency key exists on the connection (then no row).
pub(crate) const INSERT_JOB: &str = "INSERT INTO jobs
        (connection, kind, idempotency_key, payload, state, attempts, next_run_at,
         created_at, updated_at)
     VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $6)
     ON CONFLICT (connection, idempotency_key) DO NOTHING
     RETURNING id";

/// `$1` id, `$2` state, `$3` error, `$4` now.
pub(crate) const FINISH_JOB: &str = "UPDATE jobs
        SET state = $2, last_error = $3, lease_until = NULL, lease_token = NULL, updated_at = $4
      WHERE id = $1";

/// `$1` connection, `$2` idempotency key, `$3` now: a pending job runs now, not later.
pub(crate) const WAKE_JOB: &str = "UPDATE jobs
        SET next_run_at = $3, updated_at = $3
      WHERE connection = $1 AND idempotency_key = $2 AND state = 'pending' AND next_run_at > $3";

/// `$1` id, `$2` lease token, `$3` next_run_at, `$4` error, `$5` now, `$6` how many
/// of the claim's attempts to put back (0 or 1).
pub(crate) const RETRY_JOB: &str = "UPDATE jobs
        SET state = 'pending', next_run_at = $3, last_error = $4, attempts = attempts - $6,
            lease_until = NULL, lease_token = NULL, updated_at = $5
      WHERE id = $1 AND lease_token = $2 AND state = 'running'";

/// Extend the lease of every job one claim still holds. `$1` the claim's lease
/// token, `$2` lease_until, `$3` now.
pub(crate) const RENEW_JOBS: &str = "UPDATE jobs
        SET lease_until = $2, updated_at = $3
      WHERE lease_token = $1 AND state = 'running'
      RETURNING id";

/// A person's retry ([`crate::ExceptionAction::Retry`]): a given-up job runs again,
/// its attempts from zero and its horizon from now; a pending one runs now instead of
/// at its next attempt. `$1` id, `$2` now. No row: the job is running or done.
/// `$1` connection, `$2` erp_id: the order's overrides, by field.
pub(crate) const LIST_ORDER_OVERRIDES: &str = "SELECT field, value FROM order_overrides WHERE connection = $1 AND erp_id = $2 ORDER BY field";

/// `$1` connection, `$2` erp_id, `$3` field, `$4` value, `$5` set_by, `$6` set_at.
pub(crate) const SET_ORDER_OVERRIDE: &str = "INSERT INTO order_overrides (connection, erp_id, field, value, set_by, set_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (connection, erp_id, field) DO UPDATE SET value = excluded.value, set_by = excluded.set_by, set_at = excluded.set_at";

/// `$1` connection, `$2` erp_id, `$3` field.
pub(crate) const REMOVE_ORDER_OVERRIDE: &str = "DELETE FROM order_overrides WHERE connection = $1 AND erp_id = $2 AND field = $3";

/// The order's next push is sent whatever ShipStation holds (its overrides changed).
pub(crate) const FORGET_PUSHED_HASH: &str = "UPDATE orders SET pushed_hash = NULL WHERE connection = $1 AND erp_id = $2";

pub(crate) const REARM_JOB: &str = "UPDATE jobs
        SET attempts = CASE WHEN state = 'dead' THEN 0 ELSE attempts END,
            created_at = CASE WHEN state = 'dead' THEN $2 ELSE created_at END,
            state = 'pending', next_run_at = $2, lease_until = NULL, lease_token = NULL, updated_at = $2
      WHERE id = $1 AND state IN ('dead', 'pending')
      RETURNING id";

/// What a retry needs to know of a job. `$1` id.
pub(crate) const JOB_STANDING: &str = "SELECT kind, state, attempts, next_run_at, last_error FROM jobs WHERE id = $1";

pub(crate) const JOB_EXISTS: &str = "SELECT id FROM jobs WHERE id = $1";

pub(crate) const GET_JOB: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");

/// `$1` connection, `$2` kind, `$3` state (each NULL for any), `$4` limit.
pub(crate) const LIST_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs
     WHERE ($1 IS NULL OR connection = $1)
       AND ($2 IS NULL OR kind = $2)
       AND ($3 IS NULL OR state = $3)
     ORDER BY id
     LIMIT $4"
);

pub(crate) const COUNT_JOBS: &str =
    "SELECT kind, state, COUNT(*) AS n FROM jobs WHERE connection = $1 GROUP BY kind, state";

/// Pending and running jobs per kind: `$1` connection.
pub(crate) const COUNT_LIVE_JOBS: &str =
    "SELECT kind, COUNT(*) AS n FROM jobs WHERE connection = $1 AND state IN ('pending', 'running') GROUP BY kind";

/// The oldest pending and running jobs of one kind: `$1` connection, `$2` kind, `$3` limit.
pub(crate) const LIVE_JOB_IDS: &str = "SELECT id FROM jobs
     WHERE connection = $1 AND kind = $2 AND state IN ('pending', 'running')
     ORDER BY id LIMIT $3";

/// Dead jobs per kind whose `last_error` matches `$2` (the unreadable-payload
/// pattern): `$1` connection.
pub(crate) const COUNT_UNREADABLE_JOBS: &str = "SELECT kind, COUNT(*) AS n FROM jobs
     WHERE connection = $1 AND state = 'dead' AND last_error LIKE $2 GROUP BY kind";

/// The oldest of those of one kind: `$1` connection, `$2` kind, `$3` pattern, `$4` limit.
pub(crate) const UNREADABLE_JOB_IDS: &str = "SELECT id FROM jobs
     WHERE connection = $1 AND kind = $2 AND state = 'dead' AND last_error LIKE $3
     ORDER BY id LIMIT $4";

/// The jobs a claim would take, counted, with their first and last `created_at`:
/// `$1` connection, `$2` kind, `$3` now (the claim's condition).
pub(crate) const RUNNABLE_JOBS: &str = "SELECT COUNT(*) AS n, MIN(created_at) AS first_planned, MAX(created_at) AS last_planned
       FROM jobs
      WHERE connection = $1 AND kind = $2
        AND ((state = 'pending' AND next_run_at <= $3) OR (state = 'running' AND lease_until <= $3))";

/// Pending and running jobs of every connection, with the earliest `next_run_at`.
pub(crate) const JOB_STATS: &str = "SELECT connection, kind, state, COUNT(*) AS n, MIN(next_run_at) AS earliest
       FROM jobs WHERE state IN ('pending', 'running')
      GROUP BY connection, kind, state";

// ---- watermarks

/// The first value of a watermark: no row when one exists already (someone else
/// wrote it first). `$1` connection, `$2` name, `$3` value, `$4` now.
pub(crate) const INSERT_WATERMARK: &str =
    "INSERT INTO watermarks (connection, name, value, updated_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (connection, name) DO NOTHING";

/// Compare-and-set: move a watermark only from the value its writer read. On
/// PostgreSQL a concurrent mover waits on the row lock and then finds the value
/// changed (no row). `$1` connection, `$2` name, `$3` new value, `$4` now, `$5` the
/// value read.
pub(crate) const MOVE_WATERMARK: &str = "UPDATE watermarks
        SET value = $3, updated_at = $4
      WHERE connection = $1 AND name = $2 AND value = $5";

pub(crate) const GET_WATERMARK: &str =
    "SELECT value FROM watermarks WHERE connection = $1 AND name = $2";

// ---- release on drain

/// A worker's running jobs back to pending, keeping the attempt their claim counted
/// (the step was cut short, and its write may have gone out: the next claim is a
/// retry, which reads back first); their `next_run_at` (at or before the claim)
/// makes them runnable at once. `$1` the worker's token prefix, `$2` now.
pub(crate) const RELEASE_JOBS: &str = "UPDATE jobs
        SET state = 'pending',
            lease_until = NULL, lease_token = NULL, updated_at = $2
      WHERE state = 'running' AND substr(lease_token, 1, length($1)) = $1
      RETURNING id, connection, kind";

/// A worker's pass leases cleared; the due time stays. `$1` prefix, `$2` now.
pub(crate) const RELEASE_SCHEDULES: &str = "UPDATE schedules
        SET lease_token = NULL, lease_until = NULL, updated_at = $2
      WHERE substr(lease_token, 1, length($1)) = $1
      RETURNING connection, name";

// ---- schedules (recurring passes)

macro_rules! schedule_columns {
    () => {
        "connection, name, next_due_at, lease_token, lease_until, last_started_at, \
         last_success_at, last_error, runs, updated_at"
    };
}

/// A pass's row, due now, unless it exists. `$1` connection, `$2` name, `$3` now.
pub(crate) const ENSURE_SCHEDULE: &str = "INSERT INTO schedules (connection, name, next_due_at, runs, updated_at)
     VALUES ($1, $2, NULL, 0, $3)
     ON CONFLICT (connection, name) DO NOTHING";

/// Lease a pass when it is due (or `$6`, forced) and no live lease holds it. On
/// PostgreSQL a second taker waits on the row lock, then sees the first one's lease
/// and updates nothing. `$1` connection, `$2` name, `$3` now, `$4` lease token,
/// `$5` lease_until, `$6` force.
pub(crate) const TAKE_SCHEDULE: &str = concat!(
    "UPDATE schedules
        SET lease_token = $4, lease_until = $5, last_started_at = $3, updated_at = $3
      WHERE connection = $1 AND name = $2
        AND (lease_token IS NULL OR lease_until <= $3)
        AND ($6 OR next_due_at IS NULL OR next_due_at <= $3)
      RETURNING ",
    schedule_columns!()
);

/// Give a pass back with its token. `$1` connection, `$2` name, `$3` token,
/// `$4` next due, `$5` the error (NULL: it worked), `$6` now.
pub(crate) const FINISH_SCHEDULE: &str = "UPDATE schedules
        SET lease_token = NULL, lease_until = NULL, next_due_at = $4,
            last_success_at = CASE WHEN $5 IS NULL THEN last_started_at ELSE last_success_at END,
            last_error = $5,
            runs = runs + 1,
            updated_at = $6
      WHERE connection = $1 AND name = $2 AND lease_token = $3";

/// Extend a pass's lease while its token holds it. `$1` connection, `$2` name,
/// `$3` token, `$4` lease_until, `$5` now.
pub(crate) const RENEW_SCHEDULE: &str = "UPDATE schedules
        SET lease_until = $4, updated_at = $5
      WHERE connection = $1 AND name = $2 AND lease_token = $3";

/// The later of the stored last success and `$3`. `$1` connection, `$2` name, `$3` at,
/// `$4` now.
pub(crate) const RECORD_SCHEDULE_SUCCESS: &str = "INSERT INTO schedules (connection, name, next_due_at, last_success_at, runs, updated_at)
     VALUES ($1, $2, NULL, $3, 0, $4)
     ON CONFLICT (connection, name) DO UPDATE SET
        last_success_at = CASE
            WHEN schedules.last_success_at IS NULL OR schedules.last_success_at < excluded.last_success_at
            THEN excluded.last_success_at
            ELSE schedules.last_success_at
        END,
        updated_at = excluded.updated_at";

/// Due no later than `$3` (a pass never run, or not yet made, is due now already).
/// `$1` connection, `$2` name, `$4` now.
pub(crate) const HASTEN_SCHEDULE: &str = "UPDATE schedules
        SET next_due_at = $3, updated_at = $4
      WHERE connection = $1 AND name = $2 AND next_due_at IS NOT NULL AND next_due_at > $3";

pub(crate) const GET_SCHEDULE: &str = concat!(
    "SELECT ",
    schedule_columns!(),
    " FROM schedules WHERE connection = $1 AND name = $2"
);

/// `$1` connection (NULL for all).
pub(crate) const LIST_SCHEDULES: &str = concat!(
    "SELECT ",
    schedule_columns!(),
    " FROM schedules WHERE ($1 IS NULL OR connection = $1) ORDER BY connection, name"
);

// ---- events

pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (connection, record_type, record_id, kind, detail, at)
     VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const TIMELINE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events
     WHERE connection = $1 AND record_type = $2 AND record_id = $3
     ORDER BY at, id"
);

/// An order's events and those of its shipments (labels, fulfillments, its shares of
/// merged labels), each with the shipment's tracking number, in the order they
/// happened. `$1` connection, `$2` ERP order id.
pub(crate) const ORDER_TIMELINE: &str = "SELECT e.id, e.connection, e.record_type, e.record_id, e.kind, e.detail, e.at, s.tracking_number
     FROM events e
     LEFT JOIN shipments s ON e.record_type = 'shipment' AND s.connection = e.connection AND s.shipment_key = e.record_id
     WHERE e.connection = $1
       AND ((e.record_type = 'order' AND e.record_id = $2)
         OR (e.record_type = 'shipment' AND e.record_id IN (SELECT shipment_key FROM shipments WHERE connection = $1 AND erp_id = $2)))
     ORDER BY e.at, e.id";

// ---- exceptions

/// Open an exception, or refresh the live one (open or acknowledged) of the same
/// kind on the record. The conflict target names the partial unique index (`WHERE
/// state IN ('open', 'acknowledged')`). One of the kind ignored on the record keeps it
/// from being raised again: then no row is returned. `occurrences = 1` in the
/// returned row means it was newly opened. `$1` connection, `$2` kind, `$3` owner,
/// `$4` severity, `$5` record type, `$6` record id, `$7` now, `$8` detail, `$9` the
/// job given up behind it (NULL: none, or keep the one recorded).
pub(crate) const OPEN_EXCEPTION: &str = "INSERT INTO exceptions
        (connection, kind, owner, severity, record_type, record_id, state,
         first_seen, last_seen, occurrences, detail, job_id)
     SELECT $1, $2, $3, $4, $5, $6, 'open', $7, $7, 1, $8, $9
      WHERE NOT EXISTS (SELECT 1 FROM exceptions
                         WHERE connection = $1 AND kind = $2 AND record_type = $5 AND record_id = $6
                           AND state = 'ignored')
     ON CONFLICT (connection, kind, record_type, record_id) WHERE state IN ('open', 'acknowledged')
     DO UPDATE SET
        last_seen = excluded.last_seen,
        detail = excluded.detail,
        occurrences = exceptions.occurrences + 1,
        job_id = COALESCE(excluded.job_id, exceptions.job_id)
     RETURNING id, occurrences";

/// Live exceptions (open or acknowledged) of every connection, per kind.
pub(crate) const COUNT_OPEN_EXCEPTIONS: &str = "SELECT connection, kind, COUNT(*) AS n FROM exceptions
      WHERE state IN ('open', 'acknowledged') GROUP BY connection, kind";

/// Close the live exception of a kind on a record: its condition cleared.
/// `$1` connection, `$2` kind, `$3` record type, `$4` record id, `$5` now.
pub(crate) const CLOSE_EXCEPTION: &str = "UPDATE exceptions
        SET state = 'closed', last_seen = $5, ended_at = $5
      WHERE connection = $1 AND kind = $2 AND record_type = $3 AND record_id = $4
        AND state IN ('open', 'acknowledged')
      RETURNING id, acknowledged_at";

pub(crate) const GET_EXCEPTION: &str = concat!(
    "SELECT ",
    exception_columns!(),
    " FROM exceptions WHERE id = $1"
);

/// open → acknowledged. `$1` id, `$2` now, `$3` note (NULL: keep).
pub(crate) const ACKNOWLEDGE_EXCEPTION: &str = concat!(
    "UPDATE exceptions SET state = 'acknowledged', acknowledged_at = $2, note = COALESCE($3, note)
      WHERE id = $1 AND state = 'open' RETURNING ",
    exception_columns!()
);

/// `$1` id, `$2` assignee (NULL: nobody), `$3` note (NULL: keep). Live ones only.
pub(crate) const ASSIGN_EXCEPTION: &str = concat!(
    "UPDATE exceptions SET assignee = $2, note = COALESCE($3, note)
      WHERE id = $1 AND state IN ('open', 'acknowledged') RETURNING ",
    exception_columns!()
);

/// A live exception ends by a person's word. `$1` id, `$2` state (resolved or
/// ignored), `$3` note, `$4` now.
pub(crate) const END_EXCEPTION: &str = concat!(
    "UPDATE exceptions SET state = $2, note = $3, ended_at = $4
      WHERE id = $1 AND state IN ('open', 'acknowledged') RETURNING ",
    exception_columns!()
);

/// The note of a live exception (a retry's). `$1` id, `$2` note (NULL: keep).
pub(crate) const NOTE_EXCEPTION: &str = concat!(
    "UPDATE exceptions SET note = COALESCE($2, note)
      WHERE id = $1 AND state IN ('open', 'acknowledged') RETURNING ",
    exception_columns!()
);

/// `$1` exception id, `$2` connection, `$3` at, `$4` actor, `$5` action, `$6` before,
/// `$7` after, `$8` note.
pub(crate) const INSERT_EXCEPTION_ACTION: &str = "INSERT INTO exception_actions
        (exception_id, connection, at, actor, action, before, after, note)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     RETURNING id";

/// `$1` connection, `$2` exception id, `$3` after id (each NULL for any), `$4` limit.
pub(crate) const LIST_EXCEPTION_ACTIONS: &str = "SELECT id, exception_id, connection, at, actor, action, before, after, note
       FROM exception_actions
      WHERE ($1 IS NULL OR connection = $1)
        AND ($2 IS NULL OR exception_id = $2)
        AND ($3 IS NULL OR id > $3)
      ORDER BY id
      LIMIT $4";

/// `$1` connection, `$2` state, `$3` kind, `$4` owner, `$5` record type,
/// `$6` record id, `$7` assignee, `$8` after id (each NULL for any), `$9` live only
/// (1) or any (0), `$10` limit. In id order, oldest first.
pub(crate) const LIST_EXCEPTIONS: &str = concat!(
    "SELECT ",
    exception_columns!(),
    " FROM exceptions
     WHERE ($1 IS NULL OR connection = $1)
       AND ($2 IS NULL OR state = $2)
       AND ($3 IS NULL OR kind = $3)
       AND ($4 IS NULL OR owner = $4)
       AND ($5 IS NULL OR record_type = $5)
       AND ($6 IS NULL OR record_id = $6)
       AND ($7 IS NULL OR assignee = $7)
       AND ($8 IS NULL OR id > $8)
       AND ($9 = 0 OR state IN ('open', 'acknowledged'))
     ORDER BY id
     LIMIT $10"
);

// ---- API tokens

macro_rules! token_columns {
    () => {
        "id, name, role, connections, prefix, created_at, revoked_at, last_used_at"
    };
}

/// `$1` name, `$2` role, `$3` connections (JSON), `$4` hash, `$5` prefix, `$6` now.
pub(crate) const INSERT_API_TOKEN: &str = concat!(
    "INSERT INTO api_tokens (name, role, connections, hash, prefix, created_at)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
    token_columns!()
);

pub(crate) const LIST_API_TOKENS: &str = concat!("SELECT ", token_columns!(), " FROM api_tokens ORDER BY id");

pub(crate) const API_TOKEN_BY_HASH: &str =
    concat!("SELECT ", token_columns!(), " FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL");

/// `$1` id, `$2` now.
pub(crate) const REVOKE_API_TOKEN: &str = concat!(
    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING ",
    token_columns!()
);

/// `$1` id, `$2` now, `$3` now less a minute.
pub(crate) const TOUCH_API_TOKEN: &str = "UPDATE api_tokens SET last_used_at = $2
      WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)";

// ---- shipments

/// Insert a shipment or replace the one with its key; `created_at` stays the first
/// write's. `$1` connection, `$2`..`$21` the fields in column order, `$22` now.
/// What ShipStation made one-way stays one-way whatever copy of the row a writer
/// started from: a void, its time, the first scan and the ERP fulfilment's id are
/// never undone by a commit built from a row read before them (the lanes of one
/// connection, and several workers, commit at once).
pub(crate) const UPSERT_SHIPMENT: &str = concat!(
    "INSERT INTO shipments (",
    shipment_columns!(),
    ")
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
             $18, $19, $20, $21, $22, $22)
     ON CONFLICT (connection, shipment_key) DO UPDATE SET
        kind = excluded.kind,
        ss_id = excluded.ss_id,
        ss_order_id = excluded.ss_order_id,
        ss_order_key = excluded.ss_order_key,
        erp_id = excluded.erp_id,
        carrier = excluded.carrier,
        service = excluded.service,
        tracking_number = excluded.tracking_number,
        ship_date = excluded.ship_date,
        cost_minor = excluded.cost_minor,
        cost_currency = excluded.cost_currency,
        ss_created_at = excluded.ss_created_at,
        voided = (shipments.voided OR excluded.voided),
        voided_at = COALESCE(shipments.voided_at, excluded.voided_at),
        lines = excluded.lines,
        first_scan_at = COALESCE(shipments.first_scan_at, excluded.first_scan_at),
        tracking_status = excluded.tracking_status,
        state = excluded.state,
        erp_fulfilment_id = COALESCE(excluded.erp_fulfilment_id, shipments.erp_fulfilment_id),
        updated_at = excluded.updated_at"
);

pub(crate) const GET_SHIPMENT: &str = concat!(
    "SELECT ",
    shipment_columns!(),
    " FROM shipments WHERE connection = $1 AND shipment_key = $2"
);

/// `$1` connection, `$2` erp id, `$3` ShipStation order id, `$4` state,
/// `$5` tracking number (each NULL for any), `$6` awaiting scan only (live labels
/// with no carrier scan yet), `$7` limit, `$8` kind, `$9` voided (each NULL for
/// any), `$10`/`$11`/`$12` the cursor (`ss_created_at`, connection, key; NULL: from
/// the start). Oldest `ss_created_at` first, then by connection and key: the
/// primary key breaks every tie, so a cursor never skips nor repeats a row.
pub(crate) const LIST_SHIPMENTS: &str = concat!(
    "SELECT ",
    shipment_columns!(),
    " FROM shipments
     WHERE ($1 IS NULL OR connection = $1)
       AND ($2 IS NULL OR erp_id = $2)
       AND ($3 IS NULL OR ss_order_id = $3)
       AND ($4 IS NULL OR state = $4)
       AND ($5 IS NULL OR tracking_number = $5)
       AND (NOT $6 OR (kind = 'label' AND NOT voided AND first_scan_at IS NULL))
       AND ($8 IS NULL OR kind = $8)
       AND ($9 IS NULL OR voided = $9)
       AND ($10 IS NULL OR (ss_created_at, connection, shipment_key) > ($10, $11, $12))
     ORDER BY ss_created_at, connection, shipment_key
     LIMIT $7"
);

// ---- the scan sweep

/// A label the scan sweep can check: live, no scan yet, mapped to an ERP order, with
/// a tracking number (the partial index `shipments_scans_due` has the same terms).
macro_rules! checkable_label {
    () => {
        "kind = 'label' AND NOT voided AND first_scan_at IS NULL \
         AND erp_id IS NOT NULL AND tracking_number IS NOT NULL"
    };
}

macro_rules! scan_check_columns {
    () => {
        "scan_checked_at, scan_empty_checks, scan_due_at, scan_coarse_status"
    };
}

/// `$1` connection, `$2` now, `$3` limit. Least recently checked first.
pub(crate) const SCANS_DUE: &str = concat!(
    "SELECT ",
    shipment_columns!(),
    ", ",
    scan_check_columns!(),
    " FROM shipments
     WHERE connection = $1 AND ",
    checkable_label!(),
    " AND (scan_due_at IS NULL OR scan_due_at <= $2)
     ORDER BY scan_checked_at ASC NULLS FIRST, ss_created_at, shipment_key
     LIMIT $3"
);

/// The checkable labels with one of `count` tracking numbers: `$1` connection,
/// `$2`.. the numbers.
pub(crate) fn scans_awaiting(count: usize) -> String {
    let numbers: Vec<String> = (2..count + 2).map(|n| format!("${n}")).collect();
    format!(
        concat!(
            "SELECT ",
            shipment_columns!(),
            ", ",
            scan_check_columns!(),
            " FROM shipments WHERE connection = $1 AND ",
            checkable_label!(),
            " AND tracking_number IN ({}) ORDER BY tracking_number, shipment_key"
        ),
        numbers.join(", ")
    )
}

/// Tracking numbers per [`scans_awaiting`] query (well inside both backends' limit
/// on bound parameters).
pub(crate) const SCANS_AWAITING_CHUNK: usize = 500;

/// `$1` connection, `$2` shipment key, `$3` checked at, `$4` next due, `$5` coarse
/// status or NULL to keep the stored one.
pub(crate) const MARK_SCAN_CHECKED: &str = "UPDATE shipments
        SET scan_checked_at = $3,
            scan_due_at = $4,
            scan_empty_checks = scan_empty_checks + 1,
            scan_coarse_status = COALESCE($5, scan_coarse_status)
      WHERE connection = $1 AND shipment_key = $2";

// ---- what the shipment poll can find

/// `$1` connection, `$2` orders changed since, `$3` labels created since: `n` is 0
/// when the poll can find nothing (each part stops at its first row).
pub(crate) const SHIPMENT_POLL_CAN_FIND: &str = "SELECT
        (SELECT COUNT(*) FROM (SELECT 1 FROM orders
            WHERE connection = $1
              AND (state = 'pushed' OR (ss_order_id IS NOT NULL AND updated_at >= $2))
            LIMIT 1) AS o)
      + (SELECT COUNT(*) FROM (SELECT 1 FROM shipments
            WHERE connection = $1 AND kind = 'label' AND NOT voided AND ss_created_at >= $3
            LIMIT 1) AS s) AS n";

/// `$1` connection, `$2` from, `$3` to (epoch ms, both inclusive): `n`, the
/// ShipStation labels (distinct shipment ids; a merged label has a row per order) the
/// store holds created in that time, voided or not.
pub(crate) const COUNT_LABELS_CREATED: &str = "SELECT COUNT(DISTINCT ss_id) AS n FROM shipments
      WHERE connection = $1 AND kind = 'label' AND ss_created_at >= $2 AND ss_created_at <= $3";

// ---- the rate budget

/// `$1` key, `$2` now.
pub(crate) const SPEND_BUDGET: &str =
    "UPDATE rate_budgets SET remaining = remaining - 1, updated_at = $2 WHERE key = $1";

/// A budget row for a counted key, with no window running yet (unless one exists),
/// so that its first takers lock one row. `$1` key, `$2` limit, `$3` now.
pub(crate) const ENSURE_COUNTED_BUDGET: &str =
    "INSERT INTO rate_budgets (key, limit_, remaining, reset_at, updated_at)
     VALUES ($1, $2, $2, 0, $3)
     ON CONFLICT (key) DO NOTHING";

/// A new window of a counted key, this take spent: `$1` key, `$2` limit,
/// `$3` remaining after this take, `$4` reset_at, `$5` now.
pub(crate) const START_BUDGET_WINDOW: &str =
    "UPDATE rate_budgets SET limit_ = $2, remaining = $3, reset_at = $4, updated_at = $5 WHERE key = $1";

/// Record what the server said. While the stored window is still running and the
/// new reset is the same window (within `$6` ms of rounding), keep the smaller
/// `remaining`: responses to requests in flight arrive out of order.
/// `$1` key, `$2` limit, `$3` remaining, `$4` reset_at, `$5` now, `$6` tolerance.
pub(crate) const OBSERVE_BUDGET: &str =
    "INSERT INTO rate_budgets (key, limit_, remaining, reset_at, updated_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (key) DO UPDATE SET
        limit_ = excluded.limit_,
        remaining = CASE
            WHEN rate_budgets.reset_at > excluded.updated_at
             AND excluded.reset_at <= rate_budgets.reset_at + $6
             AND rate_budgets.remaining < excluded.remaining
            THEN rate_budgets.remaining
            ELSE excluded.remaining
        END,
        reset_at = excluded.reset_at,
        updated_at = excluded.updated_at";

// ---- the cost ledger (insert only: no statement here updates or deletes an entry)

/// Record a cost entry unless its key is recorded on the connection (then no row).
/// `$1` connection, `$2` entry key, `$3` kind, `$4` charge, `$5` revision,
/// `$6` amount (minor units), `$7` currency, `$8` shipment key, `$9` erp id,
/// `$10` ShipStation order id, `$11` carrier, `$12` service, `$13` ship date,
/// `$14` label created at, `$15` occurred at, `$16` source, `$17` id of the entry
/// reversed, `$18` now.
pub(crate) const INSERT_COST_ENTRY: &str = "INSERT INTO cost_entries
        (connection, entry_key, kind, charge, revision, amount_minor, currency, shipment_key,
         erp_id, ss_order_id, carrier, service, ship_date, label_created_at, occurred_at,
         source, reverses_id, recorded_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
     ON CONFLICT (connection, entry_key) DO NOTHING
     RETURNING id";

/// `$1` connection, `$2` entry key.
pub(crate) const COST_ENTRY_ID: &str = "SELECT id FROM cost_entries WHERE connection = $1 AND entry_key = $2";

/// An entry's columns, with the key of the entry it reverses (`c` the entry, `r` the
/// one reversed).
macro_rules! cost_entry_select {
    () => {
        "SELECT c.id, c.connection, c.entry_key, c.kind, c.charge, c.revision, c.amount_minor, \
                c.currency, c.shipment_key, c.erp_id, c.ss_order_id, c.carrier, c.service, \
                c.ship_date, c.label_created_at, c.occurred_at, c.source, c.reverses_id, \
                c.recorded_at, r.entry_key AS reverses_key
           FROM cost_entries c LEFT JOIN cost_entries r ON r.id = c.reverses_id"
    };
}

pub(crate) const GET_COST_ENTRY: &str = concat!(cost_entry_select!(), " WHERE c.id = $1");

/// `$1` connection, `$2` entry key.
pub(crate) const GET_COST_ENTRY_BY_KEY: &str =
    concat!(cost_entry_select!(), " WHERE c.connection = $1 AND c.entry_key = $2");

/// The filter of [`crate::CostEntryFilter`] over cost entries `c`, one page of it in
/// label-time order (then id, unique: a cursor never skips nor repeats a row):
/// `$1` connection, `$2` ERP order, `$3` shipment key, `$4`/`$5` label time
/// from (inclusive) / until (exclusive) (each NULL for any), `$6`/`$7` the cursor
/// (label time, id; NULL: from the start), `$8` limit, `$9` 1 for only entries in no
/// live batch (else 0), `$10` a batch id (entries it holds or held), `$11` 1 for only
/// converted entries, 0 for only those waiting for a rate (NULL for any). Entries
/// and their conversions are listed by the same filter.
macro_rules! cost_entry_filter {
    () => {
        " WHERE ($1 IS NULL OR c.connection = $1)
        AND ($2 IS NULL OR c.erp_id = $2)
        AND ($3 IS NULL OR c.shipment_key = $3)
        AND ($4 IS NULL OR c.label_created_at >= $4)
        AND ($5 IS NULL OR c.label_created_at < $5)
        AND ($6 IS NULL OR c.label_created_at > $6 OR (c.label_created_at = $6 AND c.id > $7))
        AND ($9 = 0 OR NOT EXISTS (SELECT 1 FROM cost_batch_entries b WHERE b.entry_id = c.id AND b.live = 1))
        AND ($10 IS NULL OR EXISTS (SELECT 1 FROM cost_batch_entries m WHERE m.entry_id = c.id AND m.batch_id = $10))
        AND ($11 IS NULL
          OR ($11 = 1 AND EXISTS (SELECT 1 FROM cost_conversions x WHERE x.entry_id = c.id))
          OR ($11 = 0 AND NOT EXISTS (SELECT 1 FROM cost_conversions x WHERE x.entry_id = c.id)))
      ORDER BY c.label_created_at, c.id
      LIMIT $8"
    };
}

pub(crate) const LIST_COST_ENTRIES: &str = concat!(
    cost_entry_select!(),
    cost_entry_filter!()
);

// ---- conversions of cost entries (insert only: no statement here updates or deletes one)

/// `$1` connection, `$2` entry key: the entry's id and amount.
pub(crate) const COST_ENTRY_AMOUNT: &str =
    "SELECT id, amount_minor, currency FROM cost_entries WHERE connection = $1 AND entry_key = $2";

/// Record a conversion unless the entry has one (then no row). `$1` connection, `$2`
/// entry key, `$3` entry id, `$4`/`$5` original, `$6`/`$7` base, `$8` rate from, `$9`
/// rate to, `$10` rate date, `$11` wanted date, `$12` source, `$13` source detail,
/// `$14` rounding, `$15` exact, `$16` now.
pub(crate) const INSERT_COST_CONVERSION: &str = "INSERT INTO cost_conversions
        (connection, entry_key, entry_id, original_minor, original_currency, base_minor, base_currency,
         rate_from, rate_to, rate_date, wanted_date, source, source_detail, rounding, exact, converted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
     ON CONFLICT DO NOTHING
     RETURNING entry_id";

macro_rules! cost_conversion_select {
    () => {
        "SELECT v.connection, v.entry_key, v.entry_id, v.original_minor, v.original_currency, v.base_minor, \
                v.base_currency, v.rate_from, v.rate_to, v.rate_date, v.wanted_date, v.source, v.source_detail, \
                v.rounding, v.exact, v.converted_at
           FROM cost_conversions v"
    };
}

/// `$1` connection, `$2` entry key.
pub(crate) const GET_COST_CONVERSION: &str =
    concat!(cost_conversion_select!(), " WHERE v.connection = $1 AND v.entry_key = $2");

/// The conversions of the entries [`LIST_COST_ENTRIES`] lists, with its parameters.
pub(crate) const LIST_COST_CONVERSIONS: &str = concat!(
    cost_conversion_select!(),
    " JOIN cost_entries c ON c.id = v.entry_id",
    cost_entry_filter!()
);

/// `$1` connection, `$2` after this id (NULL: from the start), `$3` limit.
pub(crate) const UNCONVERTED_COST_ENTRIES: &str = concat!(
    cost_entry_select!(),
    " WHERE c.connection = $1
        AND ($2 IS NULL OR c.id > $2)
        AND NOT EXISTS (SELECT 1 FROM cost_conversions v WHERE v.entry_id = c.id)
      ORDER BY c.id
      LIMIT $3"
);

// ---- cost batches (a posted one never changes; none is ever deleted)

/// Plan a batch unless its key exists (then no row). `$1` connection, `$2` key,
/// `$3`/`$4` window, `$5` revision, `$6` state, `$7` journal JSON, `$8` base currency,
/// `$9` total, `$10` entries, `$11` carried over, `$12` now, `$13` detail. One
/// planned as posted (nothing to post) is posted now.
pub(crate) const INSERT_COST_BATCH: &str = "INSERT INTO cost_batches
        (connection, batch_key, window_start, window_end, revision, state, journal, base_currency, total_minor,
         entry_count, carried_over, planned_at, updated_at, detail, posted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, CASE WHEN $6 = 'posted' THEN $12 ELSE NULL END)
     ON CONFLICT (connection, batch_key) DO NOTHING
     RETURNING id";

/// Take an entry into a batch unless it is in a live one (then no row). `$1`
/// connection, `$2` batch id, `$3` entry key, `$4`/`$5` carried from.
pub(crate) const INSERT_BATCH_ENTRY: &str = "INSERT INTO cost_batch_entries
        (connection, batch_id, entry_id, entry_key, carried_from_start, carried_from_end, live)
     SELECT $1, $2, c.id, c.entry_key, $4, $5, 1 FROM cost_entries c WHERE c.connection = $1 AND c.entry_key = $3
     ON CONFLICT DO NOTHING
     RETURNING entry_id";

/// Move a batch's state from what its writer read. `$1` connection, `$2` key, `$3`
/// from, `$4` to, `$5` ERP move id, `$6` detail, `$7` now. No row: it moved.
pub(crate) const MOVE_COST_BATCH: &str = "UPDATE cost_batches
        SET state = $4,
            erp_move_id = COALESCE($5, erp_move_id),
            detail = COALESCE($6, detail),
            posted_at = CASE WHEN $4 = 'posted' THEN $7 ELSE posted_at END,
            updated_at = $7
      WHERE connection = $1 AND batch_key = $2 AND state = $3
      RETURNING id";

/// A withdrawn batch lets its entries go. `$1` batch id.
pub(crate) const RELEASE_BATCH_ENTRIES: &str = "UPDATE cost_batch_entries SET live = 0 WHERE batch_id = $1";

macro_rules! cost_batch_select {
    () => {
        "SELECT id, connection, batch_key, window_start, window_end, revision, state, journal, base_currency, \
                total_minor, entry_count, carried_over, erp_move_id, detail, planned_at, posted_at, updated_at
           FROM cost_batches"
    };
}

/// `$1` connection, `$2` key.
pub(crate) const GET_COST_BATCH: &str = concat!(cost_batch_select!(), " WHERE connection = $1 AND batch_key = $2");

/// `$1` connection, `$2` state, `$3` windows ending on or after, `$4` starting on or
/// before, `$5` limit, `$6` id (each NULL for any), `$7`..`$10` the cursor
/// (connection, window start, revision, id; NULL: from the start). By connection,
/// window and revision, then id (unique: a cursor never skips nor repeats a row).
pub(crate) const LIST_COST_BATCHES: &str = concat!(
    cost_batch_select!(),
    " WHERE ($1 IS NULL OR connection = $1)
        AND ($2 IS NULL OR state = $2)
        AND ($3 IS NULL OR window_end >= $3)
        AND ($4 IS NULL OR window_start <= $4)
        AND ($6 IS NULL OR id = $6)
        AND ($7 IS NULL OR (connection, window_start, revision, id) > ($7, $8, $9, $10))
      ORDER BY connection, window_start, revision, id
      LIMIT $5"
);

/// The entries of a batch by key (live or not), with their carry-over. `$1`
/// connection, `$2` batch key.
pub(crate) const COST_BATCH_MEMBERS: &str = "SELECT m.entry_key, m.carried_from_start, m.carried_from_end
       FROM cost_batch_entries m JOIN cost_batches b ON b.id = m.batch_id
      WHERE b.connection = $1 AND b.batch_key = $2
      ORDER BY m.entry_key";

// ---- the reconciler's copies and runs

/// `$1` connection, `$2` ss_order_id, `$3` order_key, `$4` root_key, `$5` parent_id,
/// `$6` merged_into, `$7` modified_at, `$8` body. A row already moved under another
/// key by [`RESOLVE_SPLIT_CHILDREN`] or [`RESOLVE_MERGED`] keeps it until resolved again.
/// Copies of ShipStation orders, many rows a statement: the columns, then
/// [`STAGE_SS_ORDER_CONFLICT`] after the values (connection, ss_order_id, order_key,
/// root_key, parent_id, merged_into, modified_at, body).
pub(crate) const STAGE_SS_ORDER_INTO: &str =
    "INSERT INTO recon_ss_orders (connection, ss_order_id, order_key, root_key, parent_id, merged_into, modified_at, body) ";
pub(crate) const STAGE_SS_ORDER_CONFLICT: &str = " ON CONFLICT (connection, ss_order_id) DO UPDATE SET
       order_key = excluded.order_key,
       root_key = CASE WHEN excluded.parent_id IS NULL AND excluded.order_key IS NOT NULL
                       THEN excluded.root_key ELSE recon_ss_orders.root_key END,
       parent_id = excluded.parent_id,
       merged_into = COALESCE(excluded.merged_into, recon_ss_orders.merged_into),
       modified_at = excluded.modified_at,
       body = excluded.body";

/// An order merged into `$3`: `$1` connection, `$2` its id, `$4` modified_at, `$5`
/// a stub body for when the copy has no row of it (ShipStation hides merged orders).
pub(crate) const STAGE_SS_MERGE: &str = "INSERT INTO recon_ss_orders
       (connection, ss_order_id, order_key, root_key, parent_id, merged_into, modified_at, body)
     VALUES ($1, $2, NULL, 'ss:' || CAST($2 AS TEXT), NULL, $3, $4, $5)
     ON CONFLICT (connection, ss_order_id) DO UPDATE SET merged_into = excluded.merged_into";

/// `$1` connection, `$2` shipment_id, `$3` ss_order_id, `$4` root_key, `$5` body.
/// Copies of labels, many rows a statement (connection, shipment_id, ss_order_id,
/// root_key, body), then [`STAGE_SS_SHIPMENT_CONFLICT`].
pub(crate) const STAGE_SS_SHIPMENT_INTO: &str = "INSERT INTO recon_ss_shipments (connection, shipment_id, ss_order_id, root_key, body) ";
pub(crate) const STAGE_SS_SHIPMENT_CONFLICT: &str = " ON CONFLICT (connection, shipment_id) DO UPDATE SET
       ss_order_id = excluded.ss_order_id, body = excluded.body";

/// Copies of ERP orders, many rows a statement (connection, erp_id, order_key,
/// updated_at, body), then [`STAGE_ERP_ORDER_CONFLICT`].
pub(crate) const STAGE_ERP_ORDER_INTO: &str = "INSERT INTO recon_erp_orders (connection, erp_id, order_key, updated_at, body) ";
pub(crate) const STAGE_ERP_ORDER_CONFLICT: &str = " ON CONFLICT (connection, erp_id) DO UPDATE SET
       order_key = excluded.order_key, updated_at = excluded.updated_at, body = excluded.body";

/// A split child is judged under its parent's key. `$1` connection.
pub(crate) const RESOLVE_SPLIT_CHILDREN: &str = "UPDATE recon_ss_orders SET root_key =
       (SELECT p.root_key FROM recon_ss_orders p
         WHERE p.connection = recon_ss_orders.connection AND p.ss_order_id = recon_ss_orders.parent_id)
     WHERE connection = $1 AND parent_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM recon_ss_orders p
         WHERE p.connection = recon_ss_orders.connection AND p.ss_order_id = recon_ss_orders.parent_id
           AND p.root_key <> recon_ss_orders.root_key)";

/// An order merged into another, known to our ledger by its ShipStation id, is
/// judged under its own order's key. `$1` connection.
pub(crate) const RESOLVE_MERGED: &str = "UPDATE recon_ss_orders SET root_key =
       (SELECT MIN(o.order_key) FROM orders o
         WHERE o.connection = recon_ss_orders.connection AND o.ss_order_id = recon_ss_orders.ss_order_id)
     WHERE connection = $1 AND merged_into IS NOT NULL AND order_key IS NULL
       AND EXISTS (SELECT 1 FROM orders o
         WHERE o.connection = recon_ss_orders.connection AND o.ss_order_id = recon_ss_orders.ss_order_id
           AND o.order_key <> recon_ss_orders.root_key)";

/// A label is judged under its order's key. `$1` connection.
pub(crate) const RESOLVE_SHIPMENTS: &str = "UPDATE recon_ss_shipments SET root_key =
       (SELECT o.root_key FROM recon_ss_orders o
         WHERE o.connection = recon_ss_shipments.connection AND o.ss_order_id = recon_ss_shipments.ss_order_id)
     WHERE connection = $1
       AND EXISTS (SELECT 1 FROM recon_ss_orders o
         WHERE o.connection = recon_ss_shipments.connection AND o.ss_order_id = recon_ss_shipments.ss_order_id
           AND o.root_key <> recon_ss_shipments.root_key)";

/// `$1` connection, after (`$2` root_key, `$3` ss_order_id), `$4` limit.
pub(crate) const PAGE_SS_ORDERS: &str = "SELECT root_key, modified_at, merged_into, body FROM recon_ss_orders
     WHERE connection = $1 AND root_key >= $2 AND (root_key > $2 OR ss_order_id > $3)
     ORDER BY root_key, ss_order_id LIMIT $4";

/// `$1` connection, after (`$2` root_key, `$3` shipment_id), `$4` limit.
pub(crate) const PAGE_SS_SHIPMENTS: &str = "SELECT root_key, body FROM recon_ss_shipments
     WHERE connection = $1 AND root_key >= $2 AND (root_key > $2 OR shipment_id > $3)
     ORDER BY root_key, shipment_id LIMIT $4";

/// `$1` connection, after `$2` order_key, `$3` limit.
pub(crate) const PAGE_ERP_ORDERS: &str = "SELECT order_key, body FROM recon_erp_orders
     WHERE connection = $1 AND order_key > $2 ORDER BY order_key LIMIT $3";

/// Our ledger's side, by key: `$1` connection, after `$2` order_key, `$3` limit.
pub(crate) const PAGE_LEDGER_ORDERS: &str = "SELECT order_key, erp_id, number, state, ss_order_id, pushed_at FROM orders
     WHERE connection = $1 AND order_key > $2 ORDER BY order_key LIMIT $3";

macro_rules! run_columns {
    () => {
        "id, connection, mode, since, state, started_at, finished_at, stats, error"
    };
}

/// `$1` connection, `$2` mode, `$3` since, `$4` now.
pub(crate) const START_RECONCILE_RUN: &str = concat!(
    "INSERT INTO reconcile_runs (connection, mode, since, state, started_at, stats)
     VALUES ($1, $2, $3, 'running', $4, '{}') RETURNING ",
    run_columns!()
);

/// `$1` id, `$2` state, `$3` stats, `$4` error, `$5` now.
pub(crate) const FINISH_RECONCILE_RUN: &str = concat!(
    "UPDATE reconcile_runs SET state = $2, stats = $3, error = $4, finished_at = $5
     WHERE id = $1 RETURNING ",
    run_columns!()
);

/// `$1` connection, `$2` why, `$3` now.
pub(crate) const ABANDON_RECONCILE_RUNS: &str = "UPDATE reconcile_runs SET state = 'failed', error = $2, finished_at = $3
     WHERE connection = $1 AND state = 'running'";

pub(crate) const GET_RECONCILE_RUN: &str = concat!("SELECT ", run_columns!(), " FROM reconcile_runs WHERE id = $1");

/// `$1` connection or NULL, `$2` before id or NULL, `$3` limit.
pub(crate) const LIST_RECONCILE_RUNS: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM reconcile_runs
     WHERE ($1 IS NULL OR connection = $1) AND ($2 IS NULL OR id < $2)
       AND ($4 IS NULL OR mode = $4) AND ($5 IS NULL OR state = $5)
     ORDER BY id DESC LIMIT $3"
);

/// `$1` run, `$2` connection, `$3` kind, `$4` owner, `$5` record_type, `$6` record_id, `$7` detail.
pub(crate) const INSERT_RECONCILE_FINDING: &str = "INSERT INTO reconcile_findings
       (run_id, connection, kind, owner, record_type, record_id, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// `$1` run or NULL, `$2` connection or NULL, `$3` kind or NULL, `$4` after id or NULL, `$5` limit.
/// Each finding with the exception it opened or refreshed: of its kind on its
/// record, live when its run started (the run raises at its start time; one of a
/// kind is live on a record at a time, and one ended during the run and raised again
/// by it is the older of two, so the newest wins).
pub(crate) const LIST_RECONCILE_FINDINGS: &str = "SELECT f.id, f.run_id, f.connection, f.kind, f.owner, f.record_type, f.record_id, f.detail,
            (SELECT MAX(e.id) FROM exceptions e JOIN reconcile_runs r ON r.id = f.run_id
              WHERE e.connection = f.connection AND e.kind = f.kind
                AND e.record_type = f.record_type AND e.record_id = f.record_id
                AND e.first_seen <= r.started_at
                AND (e.ended_at IS NULL OR e.ended_at >= r.started_at)) AS exception_id
     FROM reconcile_findings f
     WHERE ($1 IS NULL OR f.run_id = $1) AND ($2 IS NULL OR f.connection = $2)
       AND ($3 IS NULL OR f.kind = $3) AND ($4 IS NULL OR f.id > $4)
     ORDER BY f.id LIMIT $5";

// ---- carrier invoices

/// `$1` connection, `$2` carrier, `$3` number, `$4` date, `$5` file name, `$6` content
/// hash, `$7` now. No row: the connection has that carrier's invoice number already.
pub(crate) const INSERT_CARRIER_INVOICE: &str = "INSERT INTO carrier_invoices
        (connection, carrier, invoice_number, invoice_date, file_name, content_sha256, imported_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (connection, carrier, invoice_number) DO NOTHING
     RETURNING id";

/// `$1` connection, `$2` invoice id, `$3` row, `$4` tracking number, `$5` charge type,
/// `$6` charge, `$7` amount, `$8` currency, `$9` shipment key, `$10` matched at.
pub(crate) const INSERT_INVOICE_CHARGE: &str = "INSERT INTO invoice_charges
        (connection, invoice_id, row_number, tracking_number, charge_type, charge, amount_minor, currency, shipment_key, matched_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// An unmatched charge matched, compare-and-set: `$1` connection, `$2` charge id,
/// `$3` shipment key, `$4` now. No row: it is matched already (or not there).
pub(crate) const MATCH_INVOICE_CHARGE: &str = "UPDATE invoice_charges SET shipment_key = $3, matched_at = $4
      WHERE connection = $1 AND id = $2 AND shipment_key IS NULL
      RETURNING id";

macro_rules! carrier_invoice_select {
    () => {
        "SELECT id, connection, carrier, invoice_number, invoice_date, file_name, content_sha256, imported_at FROM carrier_invoices"
    };
}

/// `$1` connection, `$2` carrier, `$3` number.
pub(crate) const GET_CARRIER_INVOICE: &str =
    concat!(carrier_invoice_select!(), " WHERE connection = $1 AND carrier = $2 AND invoice_number = $3");

/// `$1` connection or NULL for all.
pub(crate) const LIST_CARRIER_INVOICES: &str = concat!(carrier_invoice_select!(), " WHERE ($1 IS NULL OR connection = $1) ORDER BY id");

/// `$1` connection, `$2` invoice id, `$3` shipment key, `$4` tracking number (each
/// NULL for any), `$5` only unmatched ones. By id.
pub(crate) const LIST_INVOICE_CHARGES: &str = "SELECT c.id, c.connection, c.invoice_id, i.carrier, i.invoice_number, i.invoice_date,
            c.row_number, c.tracking_number, c.charge_type, c.charge, c.amount_minor, c.currency, c.shipment_key, c.matched_at
       FROM invoice_charges c JOIN carrier_invoices i ON i.id = c.invoice_id
      WHERE ($1 IS NULL OR c.connection = $1)
        AND ($2 IS NULL OR c.invoice_id = $2)
        AND ($3 IS NULL OR c.shipment_key = $3)
        AND ($4 IS NULL OR c.tracking_number = $4)
        AND (NOT $5 OR c.shipment_key IS NULL)
      ORDER BY c.id";

/// Live labels of a carrier shipped in a date range that no invoice charge bills:
/// `$1` connection, `$2` carrier, `$3` first ship date, `$4` last (YYYY-MM-DD).
pub(crate) const UNINVOICED_LABELS: &str = concat!(
    "SELECT ",
    shipment_columns!(),
    " FROM shipments s
     WHERE s.connection = $1 AND s.kind = 'label' AND NOT s.voided AND s.carrier = $2
       AND s.ship_date >= $3 AND s.ship_date <= $4
       AND NOT EXISTS (SELECT 1 FROM invoice_charges c WHERE c.connection = s.connection AND c.shipment_key = s.shipment_key)
     ORDER BY s.ship_date, s.shipment_key"
);
