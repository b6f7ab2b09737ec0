//! The one [`Store`](crate::Store) implementation, written once and stamped onto each
//! backend by [`store_impl!`]: the SQL is in [`crate::sql`], the row mapping in
//! [`crate::rows`], and a backend only says how to open a write transaction and which
//! [`Dialect`](crate::sql::Dialect) it speaks.
//!
//! A backend type provides two inherent methods:
//! - `fn reader(&self) -> &Pool<DB>` for reads outside any transaction;
//! - `async fn write(&self) -> Result<Transaction<'static, DB>>` for every write:
//!   `BEGIN IMMEDIATE` on the single SQLite writer, a plain `BEGIN` on PostgreSQL
//!   (where row locks from the dialect do the serialising).
//! - `async fn commit_inbox(&self, changes: &[Change]) -> Result<Vec<CommitOutcome>>`
//!   for a batch of inbox-only changes (webhook deliveries: jobs and events, nothing
//!   else) in one transaction, with the outcomes of committing them one after the
//!   other: PostgreSQL runs the generic multi-row statements
//!   (`store_impl::inbox_in_transaction`), SQLite its raw-handle path
//!   (`crate::sqlite`'s `inbox`).
//!
//! Nothing here holds a reader while a write transaction is open, so an in-memory
//! SQLite store with a single connection cannot deadlock on itself.

use crate::StoreError;

/// How a query failed, with its purpose. `RowNotFound` becomes `NotFound`; a missing
/// connection row (foreign key) says how to fix it.
pub(crate) fn failed(purpose: impl std::fmt::Display) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match error {
        sqlx::Error::RowNotFound => StoreError::NotFound {
            what: purpose.to_string(),
        },
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Database(format!(
                "{purpose}: the connection is not registered (call ensure_connection first): {db}"
            ))
        }
        other => StoreError::Database(format!("{purpose}: {other}")),
    }
}

/// Rows per multi-row statement staging the reconciler's copies: at 8 bound
/// parameters a row, far below either backend's limit.
pub(crate) const STAGE_ROWS_PER_STATEMENT: usize = 500;

/// `rows` with only the last of each id, in their order: one statement's
/// `ON CONFLICT DO UPDATE` may touch a row once, and the later copy is the newer.
pub(crate) fn last_of<T, K: std::hash::Hash + Eq>(rows: &[T], id: impl Fn(&T) -> K) -> Vec<&T> {
    let mut last: std::collections::HashMap<K, usize> = std::collections::HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        last.insert(id(row), i);
    }
    rows.iter().enumerate().filter(|(i, row)| last.get(&id(row)) == Some(i)).map(|(_, row)| row).collect()
}

/// An order's overrides as a JSON object (field → value), for the audit log.
pub(crate) fn overrides_json<R: sqlx::Row>(rows: &[R]) -> Result<serde_json::Value, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    let mut map = serde_json::Map::new();
    for row in rows {
        let field: String = row.try_get("field").map_err(failed("read an override's field"))?;
        let value: String = row.try_get("value").map_err(failed("read an override's value"))?;
        map.insert(field, serde_json::Value::String(value));
    }
    Ok(serde_json::Value::Object(map))
}

/// `0` means "no limit" in the filters; SQL wants a number.
pub(crate) fn sql_limit(limit: u32) -> i64 {
    if limit == 0 {
        i64::MAX
    } else {
        i64::from(limit)
    }
}

/// How every lease token of `worker` begins: its name (a `:` in it made `_`, so one
/// worker's prefix is never the head of another's), then `:`.
/// [`Store::release_leases`](crate::Store::release_leases) finds a worker's leases by it.
pub(crate) fn token_prefix(worker: &str) -> String {
    format!("{}:", worker.replace(':', "_"))
}

/// A lease token nobody else will hold: the worker's name ([`token_prefix`]), then
/// the process, the clock and a counter.
pub(crate) fn lease_token(worker: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{}{:x}-{nanos:x}-{seq:x}", token_prefix(worker), std::process::id())
}

/// Two observations whose resets are this close belong to the same window (the
/// server's `X-Rate-Limit-Reset` is whole seconds, the client adds a margin).
pub(crate) const SAME_WINDOW_TOLERANCE_MS: i64 = 1_000;

/// Stamp the [`Store`](crate::Store) implementation onto `$store`, whose rows are
/// `$db` rows and whose statements differ as `$dialect` says.
macro_rules! store_impl {
    ($store:ident, $db:ty, $dialect:path) => {
        mod store_impl {
            use jiff::Timestamp;
            use sqlx::{Executor, query};

            use super::$store;
            use $crate::backend::{failed, lease_token, sql_limit, token_prefix, SAME_WINDOW_TOLERANCE_MS};
            use $crate::model::*;
            use $crate::rows::{self, date_text, millis, enum_text, to_json, RowExt};
            use $crate::sql::{self, Dialect};
            use $crate::{job, BoxFuture, Result, Store, StoreError};

            const DIALECT: &Dialect = &$dialect;

            /// The eleven parameters of `cost_entry_filter!` (in `sql`), bound in its order.
            macro_rules! cost_filter {
                ($query:expr, $filter:expr) => {
                    $query
                        .bind($filter.connection.as_deref())
                        .bind($filter.erp_id.as_deref())
                        .bind($filter.shipment_key.as_deref())
                        .bind($filter.since.map(millis))
                        .bind($filter.until.map(millis))
                        .bind($filter.after.map(|c| millis(c.label_created_at)))
                        .bind($filter.after.map(|c| c.id))
                        .bind(sql_limit($filter.limit))
                        .bind(i64::from($filter.unbatched))
                        .bind($filter.batch_id)
                        .bind($filter.converted.map(i64::from))
                };
            }

            type Tx = sqlx::Transaction<'static, $db>;

            async fn finish(tx: Tx) -> Result<()> {
                tx.commit().await.map_err(failed("commit the transaction"))
            }

            /// What a change must be before any of it is written.
            fn check_change(change: &Change) -> Result<()> {
                if let Some(finish) = &change.finish_job
                    && !matches!(finish.state, JobState::Done | JobState::Dead)
                {
                    return Err(StoreError::Database(format!(
                        "commit: job {} cannot finish as {}; a finished job is done or dead",
                        finish.job_id, finish.state
                    )));
                }
                Ok(())
            }

            /// Whether a change only plans jobs and appends events (what a webhook
            /// delivery is): a batch of those is written with one multi-row statement
            /// per table ([`insert_inbox`]). Every field is named, so a new part of
            /// [`Change`] has to be considered here.
            fn inbox_only(change: &Change) -> bool {
                let Change {
                    connection: _,
                    now: _,
                    order,
                    jobs: _,
                    finish_job,
                    events: _,
                    open_exceptions,
                    close_exceptions,
                    watermark,
                    shipments,
                    wake_jobs,
                    cost_entries,
                    cost_conversions,
                    cost_batches,
                    batch_moves,
                    carrier_invoices,
                    invoice_matches,
                } = change;
                order.is_none()
                    && finish_job.is_none()
                    && open_exceptions.is_empty()
                    && close_exceptions.is_empty()
                    && watermark.is_none()
                    && shipments.is_empty()
                    && wake_jobs.is_empty()
                    && cost_entries.is_empty()
                    && cost_conversions.is_empty()
                    && cost_batches.is_empty()
                    && batch_moves.is_empty()
                    && carrier_invoices.is_empty()
                    && invoice_matches.is_empty()
            }

            /// Rows per multi-row statement: far below either backend's limit on
            /// bound parameters (6 a row).
            const ROWS_PER_STATEMENT: usize = 500;

            /// The jobs and events of inbox-only changes, inside `tx`, with the same
            /// outcome as applying them one after the other: the first change (in
            /// order) to plan a key gets the job, every later one, and every key
            /// stored before, is skipped.
            async fn insert_inbox(tx: &mut Tx, changes: &[Change]) -> Result<Vec<CommitOutcome>> {
                struct JobRow<'c> {
                    conn: &'c str,
                    kind: &'static str,
                    key: &'c str,
                    payload: serde_json::Value,
                    run_at: i64,
                    now: i64,
                }
                let mut jobs = Vec::new();
                let mut events = Vec::new();
                for change in changes {
                    let now = millis(change.now.unwrap_or_else(Timestamp::now));
                    let conn = change.connection.as_str();
                    for job in &change.jobs {
                        jobs.push(JobRow {
                            conn,
                            kind: job.spec.kind().as_str(),
                            key: job.idempotency_key.as_str(),
                            payload: job.spec.payload(),
                            run_at: millis(job.run_at),
                            now,
                        });
                    }
                    for event in &change.events {
                        events.push((conn, event, now));
                    }
                }

                let mut planned: std::collections::HashMap<(String, String), i64> = std::collections::HashMap::new();
                for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO jobs (connection, kind, idempotency_key, payload, state, attempts, next_run_at, created_at, updated_at) ",
                    );
                    insert.push_values(chunk, |mut row, job| {
                        row.push_bind(job.conn)
                            .push_bind(job.kind)
                            .push_bind(job.key)
                            .push_bind(&job.payload)
                            .push("'pending'")
                            .push("0")
                            .push_bind(job.run_at)
                            .push_bind(job.now)
                            .push_bind(job.now);
                    });
                    insert.push(" ON CONFLICT (connection, idempotency_key) DO NOTHING RETURNING id, connection, idempotency_key");
                    let rows = insert
                        .build()
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(failed(format_args!("plan {} inbox jobs", chunk.len())))?;
                    for row in &rows {
                        planned.insert((row.text("connection")?, row.text("idempotency_key")?), row.int("id")?);
                    }
                }

                for chunk in events.chunks(ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new("INSERT INTO events (connection, record_type, record_id, kind, detail, at) ");
                    insert.push_values(chunk, |mut row, (conn, event, now)| {
                        row.push_bind(*conn)
                            .push_bind(event.record_type.as_str())
                            .push_bind(event.record_id.as_str())
                            .push_bind(event.kind.as_str())
                            .push_bind(&event.detail)
                            .push_bind(*now);
                    });
                    insert
                        .build()
                        .execute(&mut **tx)
                        .await
                        .map_err(failed(format_args!("append {} inbox events", chunk.len())))?;
                }

                let mut outcomes = Vec::with_capacity(changes.len());
                for change in changes {
                    let mut outcome = CommitOutcome::default();
                    for job in &change.jobs {
                        match planned.remove(&(change.connection.clone(), job.idempotency_key.clone())) {
                            Some(id) => outcome.jobs_planned.push(id),
                            None => outcome.jobs_skipped.push(job.idempotency_key.clone()),
                        }
                    }
                    outcomes.push(outcome);
                }
                Ok(outcomes)
            }

            /// Carrier invoices: a number once per carrier, with every charge; then
            /// charges imported unmatched, matched compare-and-set.
            async fn apply_invoices(tx: &mut Tx, change: &Change, conn: &str, now: i64) -> Result<()> {
                for invoice in &change.carrier_invoices {
                    let number = &invoice.number;
                    let id = query(sql::INSERT_CARRIER_INVOICE)
                        .bind(conn)
                        .bind(&invoice.carrier)
                        .bind(number)
                        .bind(date_text(invoice.date))
                        .bind(&invoice.file_name)
                        .bind(&invoice.content_sha256)
                        .bind(now)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!("record invoice {number} of {}", invoice.carrier)))?;
                    let Some(id) = id else {
                        let before = query(sql::GET_CARRIER_INVOICE)
                            .bind(conn)
                            .bind(&invoice.carrier)
                            .bind(number)
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(failed(format_args!("read invoice {number} of {}", invoice.carrier)))?
                            .map(|row| rows::carrier_invoice(&row))
                            .transpose()?
                            .ok_or_else(|| StoreError::Database(format!("invoice {number} of {} was refused as imported but cannot be read", invoice.carrier)))?;
                        return Err(before.already_imported());
                    };
                    let id = id.int("id")?;
                    for charge in &invoice.charges {
                        query(sql::INSERT_INVOICE_CHARGE)
                            .bind(conn)
                            .bind(id)
                            .bind(i64::try_from(charge.row).unwrap_or(i64::MAX))
                            .bind(&charge.tracking_number)
                            .bind(&charge.charge_type)
                            .bind(charge.charge.code())
                            .bind(charge.amount.minor())
                            .bind(charge.amount.currency().code())
                            .bind(charge.shipment_key.as_deref())
                            .bind(charge.shipment_key.as_ref().map(|_| now))
                            .execute(&mut **tx)
                            .await
                            .map_err(failed(format_args!("record row {} of invoice {number}", charge.row)))?;
                    }
                }
                for m in &change.invoice_matches {
                    query(sql::MATCH_INVOICE_CHARGE)
                        .bind(conn)
                        .bind(m.charge_id)
                        .bind(&m.shipment_key)
                        .bind(now)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!("match invoice charge {} to {}", m.charge_id, m.shipment_key)))?
                        .ok_or_else(|| StoreError::InvoiceMoved { connection: conn.to_string(), charge_id: m.charge_id })?;
                }
                Ok(())
            }

            /// A batch of inbox-only changes in one transaction of its own, by
            /// [`insert_inbox`]: the `commit_inbox` of a backend that has no faster way.
            #[allow(dead_code, reason = "not every backend stores its inbox batches this way")]
            pub(super) async fn inbox_in_transaction(store: &$store, changes: &[Change]) -> Result<Vec<CommitOutcome>> {
                let mut tx = store.write().await?;
                match insert_inbox(&mut tx, changes).await {
                    Ok(outcomes) => {
                        finish(tx).await?;
                        Ok(outcomes)
                    }
                    Err(e) => {
                        tx.rollback().await.map_err(failed("roll back a batch of changes that failed"))?;
                        Err(e)
                    }
                }
            }

            /// Write one change inside `tx`. On an error the caller rolls `tx` back:
            /// nothing of the change (nor of the batch it is in) is kept.
            async fn apply_change(tx: &mut Tx, change: &Change) -> Result<CommitOutcome> {
                let now = millis(change.now.unwrap_or_else(Timestamp::now));
                let conn = change.connection.as_str();
                let mut outcome = CommitOutcome::default();

                // 1. The job this change finishes must still be ours.
                if let Some(finish) = &change.finish_job {
                    let row = query(DIALECT.lock_job)
                        .bind(finish.job_id)
                        .bind(conn)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed("check the lease of the finished job"))?;
                    let Some(row) = row else {
                        return Err(StoreError::NotFound {
                            what: format!("job {} on connection {conn}", finish.job_id),
                        });
                    };
                    if row.opt_text("lease_token")?.as_deref() != Some(finish.lease_token.as_str()) {
                        return Err(StoreError::LeaseLost { job_id: finish.job_id });
                    }
                }

                // 2. The order, and its lines when given.
                if let Some(order) = &change.order {
                    upsert_order(tx, conn, order, now).await?;
                }

                // 3. The shipments seen, one row per key.
                for shipment in &change.shipments {
                    upsert_shipment(tx, conn, shipment, now).await?;
                }

                // 3b. The cost ledger: insert or ignore, never an update.
                for entry in &change.cost_entries {
                    let reverses: Option<i64> = match &entry.reverses_key {
                        None => None,
                        Some(key) => Some(
                            query(sql::COST_ENTRY_ID)
                                .bind(conn)
                                .bind(key)
                                .fetch_optional(&mut **tx)
                                .await
                                .map_err(failed(format_args!("find cost entry {key}, which {} reverses", entry.entry_key)))?
                                .ok_or_else(|| StoreError::Database(format!(
                                    "cost entry {} reverses {key}, which is not recorded on connection {conn}; nothing of this change was written",
                                    entry.entry_key
                                )))?
                                .int("id")?,
                        ),
                    };
                    let id: Option<i64> = query(sql::INSERT_COST_ENTRY)
                        .bind(conn)
                        .bind(&entry.entry_key)
                        .bind(entry.kind.code())
                        .bind(entry.charge.code())
                        .bind(i64::from(entry.revision))
                        .bind(entry.amount.minor())
                        .bind(entry.amount.currency().code())
                        .bind(&entry.label.shipment_key)
                        .bind(entry.label.erp_id.as_deref())
                        .bind(entry.label.ss_order_id)
                        .bind(&entry.label.carrier)
                        .bind(entry.label.service.as_deref())
                        .bind(entry.label.ship_date.map(date_text))
                        .bind(millis(entry.label.label_created_at))
                        .bind(millis(entry.occurred_at))
                        .bind(entry.source.code())
                        .bind(reverses)
                        .bind(now)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!("record cost entry {}", entry.entry_key)))?
                        .map(|row| row.int("id"))
                        .transpose()?;
                    if id.is_some() {
                        outcome.cost_entries_recorded.push(entry.entry_key.clone());
                    } else {
                        // The key was recorded before. The same entry planned twice is
                        // fine (idempotent); one planned from a ledger another worker
                        // has since written (a different amount, currency or reversal
                        // under the same positional key) must not be dropped silently:
                        // the whole change is refused and re-planned from the ledger.
                        let stored = query(sql::GET_COST_ENTRY_BY_KEY)
                            .bind(conn)
                            .bind(&entry.entry_key)
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(failed(format_args!("read cost entry {}", entry.entry_key)))?
                            .map(|row| rows::cost_entry(&row))
                            .transpose()?;
                        let same = stored.as_ref().is_some_and(|e| {
                            e.entry.amount == entry.amount && e.entry.kind == entry.kind && e.entry.reverses_key == entry.reverses_key
                        });
                        if !same {
                            return Err(StoreError::CostEntryMoved { connection: conn.to_string(), entry_key: entry.entry_key.clone() });
                        }
                    }
                }

                // 3c. Conversions of recorded entries: one per entry, ever. Another
                // worker's conversion of the same entry refuses this whole change, so
                // its events are not written twice.
                for new in &change.cost_conversions {
                    let c = &new.conversion;
                    let key = &c.entry_key;
                    let entry = query(sql::COST_ENTRY_AMOUNT)
                        .bind(conn)
                        .bind(key)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!("find cost entry {key} to convert")))?
                        .ok_or_else(|| StoreError::Database(format!(
                            "a conversion names cost entry {key}, which is not recorded on connection {conn}; nothing of this change was written"
                        )))?;
                    let (entry_id, minor, currency) = (entry.int("id")?, entry.int("amount_minor")?, entry.text("currency")?);
                    if (minor, currency.as_str()) != (c.original.minor(), c.original.currency().code()) {
                        return Err(StoreError::Database(format!(
                            "the conversion of cost entry {key} is of {}, but the entry records {minor} minor units of {currency}; nothing of this change was written",
                            c.original
                        )));
                    }
                    let inserted = query(sql::INSERT_COST_CONVERSION)
                        .bind(conn)
                        .bind(key)
                        .bind(entry_id)
                        .bind(c.original.minor())
                        .bind(c.original.currency().code())
                        .bind(c.base.minor())
                        .bind(c.base.currency().code())
                        .bind(c.rate_from.to_string())
                        .bind(c.rate_to.to_string())
                        .bind(date_text(c.rate_date))
                        .bind(date_text(c.wanted_date))
                        .bind(c.source.code())
                        .bind(&new.source_detail)
                        .bind(enum_text(c.rounding))
                        .bind(c.exact.to_string())
                        .bind(now)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!("record the conversion of cost entry {key}")))?;
                    if inserted.is_none() {
                        return Err(StoreError::CostAlreadyConverted { connection: conn.to_string(), entry_key: key.clone() });
                    }
                    outcome.cost_conversions_recorded.push(key.clone());
                }

                // 3d. Cost batches: the key once, and each entry in one live batch
                // only; either taken by another worker refuses the whole change.
                for batch in &change.cost_batches {
                    let key = &batch.batch_key;
                    let moved = |detail: String| StoreError::CostBatchMoved { connection: conn.to_string(), batch_key: key.clone(), detail };
                    let total = batch.total;
                    let journal = to_json(&batch.journal, format!("the journal of cost batch {key}"))?;
                    let carried = batch.members.iter().filter(|m| m.carried_from.is_some()).count();
                    let id = query(sql::INSERT_COST_BATCH)
                        .bind(conn)
                        .bind(key)
                        .bind(date_text(batch.window.start))
                        .bind(date_text(batch.window.end))
                        .bind(i64::from(batch.revision))
                        .bind(batch.state.as_str())
                        .bind(journal)
                        .bind(total.currency().code())
                        .bind(total.minor())
                        .bind(i64::try_from(batch.members.len()).unwrap_or(i64::MAX))
                        .bind(i64::try_from(carried).unwrap_or(i64::MAX))
                        .bind(now)
                        .bind(batch.detail.as_deref())
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!("plan cost batch {key}")))?
                        .ok_or_else(|| moved("its key is planned already".into()))?
                        .int("id")?;
                    for m in &batch.members {
                        let taken = query(sql::INSERT_BATCH_ENTRY)
                            .bind(conn)
                            .bind(id)
                            .bind(&m.entry_key)
                            .bind(m.carried_from.map(|w| date_text(w.start)))
                            .bind(m.carried_from.map(|w| date_text(w.end)))
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(failed(format_args!("put cost entry {} into batch {key}", m.entry_key)))?;
                        if taken.is_none() {
                            return Err(match query(sql::COST_ENTRY_ID).bind(conn).bind(&m.entry_key).fetch_optional(&mut **tx).await {
                                Ok(None) => StoreError::Database(format!(
                                    "cost batch {key} names entry {}, which is not recorded on connection {conn}; nothing of this change was written",
                                    m.entry_key
                                )),
                                _ => moved(format!("entry {} is in another live batch", m.entry_key)),
                            });
                        }
                    }
                    outcome.cost_batches_planned.push(key.clone());
                }

                // 3e. Batch states, compare-and-set from what the writer read.
                for mv in &change.batch_moves {
                    let key = &mv.batch_key;
                    let id = query(sql::MOVE_COST_BATCH)
                        .bind(conn)
                        .bind(key)
                        .bind(mv.from.as_str())
                        .bind(mv.to.as_str())
                        .bind(mv.erp_move_id.as_deref())
                        .bind(mv.detail.as_deref())
                        .bind(now)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!("move cost batch {key} to {}", mv.to)))?
                        .ok_or_else(|| StoreError::CostBatchMoved {
                            connection: conn.to_string(),
                            batch_key: key.clone(),
                            detail: format!("it is no longer {}", mv.from),
                        })?
                        .int("id")?;
                    if mv.to == BatchState::Withdrawn {
                        query(sql::RELEASE_BATCH_ENTRIES)
                            .bind(id)
                            .execute(&mut **tx)
                            .await
                            .map_err(failed(format_args!("release the entries of withdrawn cost batch {key}")))?;
                    }
                }

                // 3f. Carrier invoices (their own function: it keeps this one's
                // frame as small as it was for every change without invoices).
                if !change.carrier_invoices.is_empty() || !change.invoice_matches.is_empty() {
                    Box::pin(apply_invoices(tx, change, conn, now)).await?;
                }

                // 4. The outbox: one job per idempotency key, ever.
                for job in &change.jobs {
                    let id: Option<i64> = query(sql::INSERT_JOB)
                        .bind(conn)
                        .bind(job.spec.kind().as_str())
                        .bind(&job.idempotency_key)
                        .bind(job.spec.payload())
                        .bind(millis(job.run_at))
                        .bind(now)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!("plan job {}", job.idempotency_key)))?
                        .map(|row| row.int("id"))
                        .transpose()?;
                    match id {
                        Some(id) => outcome.jobs_planned.push(id),
                        None => outcome.jobs_skipped.push(job.idempotency_key.clone()),
                    }
                }

                // 4b. Pending jobs this change frees run now.
                for key in &change.wake_jobs {
                    query(sql::WAKE_JOB)
                        .bind(conn)
                        .bind(key)
                        .bind(now)
                        .execute(&mut **tx)
                        .await
                        .map_err(failed(format_args!("wake job {key}")))?;
                }

                // 5. The timeline.
                for event in &change.events {
                    query(sql::INSERT_EVENT)
                        .bind(conn)
                        .bind(event.record_type.as_str())
                        .bind(&event.record_id)
                        .bind(event.kind.as_str())
                        .bind(&event.detail)
                        .bind(now)
                        .execute(&mut **tx)
                        .await
                        .map_err(failed(format_args!(
                            "append event {} of {} {}",
                            event.kind, event.record_type, event.record_id
                        )))?;
                }

                // 6. Exceptions: open or refresh, then close; shipledger's own
                //    actions go to the audit log with a person's.
                for open in &change.open_exceptions {
                    let row = query(sql::OPEN_EXCEPTION)
                        .bind(conn)
                        .bind(open.kind.code())
                        .bind(enum_text(open.kind.owner()))
                        .bind(enum_text(open.kind.severity()))
                        .bind(&open.record_type)
                        .bind(&open.record_id)
                        .bind(now)
                        .bind(&open.detail)
                        .bind(open.job_id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(failed(format_args!(
                            "open exception {} on {} {}",
                            open.kind, open.record_type, open.record_id
                        )))?;
                    // No row: one of its kind is ignored on the record.
                    let Some(row) = row else { continue };
                    if row.int("occurrences")? == 1 {
                        let id = row.int("id")?;
                        audit(tx, id, conn, now, SHIPLEDGER, "opened", &serde_json::json!({}), &serde_json::json!({"state": "open"}), None).await?;
                        outcome.exceptions_opened.push(id);
                        outcome.opened_kinds.push(open.kind);
                    }
                }
                for close in &change.close_exceptions {
                    let closed = query(sql::CLOSE_EXCEPTION)
                        .bind(conn)
                        .bind(close.kind.code())
                        .bind(&close.record_type)
                        .bind(&close.record_id)
                        .bind(now)
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(failed(format_args!(
                            "close exception {} on {} {}",
                            close.kind, close.record_type, close.record_id
                        )))?;
                    for row in &closed {
                        // Live means open or acknowledged; an acknowledged one has its time.
                        let was = if row.opt_int("acknowledged_at")?.is_some() { "acknowledged" } else { "open" };
                        audit(
                            tx,
                            row.int("id")?,
                            conn,
                            now,
                            SHIPLEDGER,
                            "closed",
                            &serde_json::json!({"state": was}),
                            &serde_json::json!({"state": "closed"}),
                            Some("its condition cleared"),
                        )
                        .await?;
                        outcome.exceptions_closed += 1;
                        outcome.closed_kinds.push(close.kind);
                    }
                }

                // 7. The watermark, compare-and-set: only from what its writer read.
                if let Some(mark) = &change.watermark {
                    let moved = match &mark.from {
                        None => query(sql::INSERT_WATERMARK)
                            .bind(conn)
                            .bind(&mark.name)
                            .bind(&mark.to)
                            .bind(now)
                            .execute(&mut **tx)
                            .await,
                        Some(from) => query(sql::MOVE_WATERMARK)
                            .bind(conn)
                            .bind(&mark.name)
                            .bind(&mark.to)
                            .bind(now)
                            .bind(from)
                            .execute(&mut **tx)
                            .await,
                    }
                    .map_err(failed(format_args!("move watermark {}", mark.name)))?;
                    if moved.rows_affected() == 0 {
                        let found = query(sql::GET_WATERMARK)
                            .bind(conn)
                            .bind(&mark.name)
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(failed(format_args!("read watermark {}", mark.name)))?
                            .map(|row| row.text("value"))
                            .transpose()?;
                        return Err(StoreError::WatermarkMoved { name: mark.name.clone(), expected: mark.from.clone(), found });
                    }
                }

                // 8. The job is done (or dead).
                if let Some(finish) = &change.finish_job {
                    query(sql::FINISH_JOB)
                        .bind(finish.job_id)
                        .bind(finish.state.as_str())
                        .bind(&finish.error)
                        .bind(now)
                        .execute(&mut **tx)
                        .await
                        .map_err(failed(format_args!("finish job {}", finish.job_id)))?;
                }

                Ok(outcome)
            }

            impl $store {
                async fn commit_change(&self, change: Change) -> Result<CommitOutcome> {
                    check_change(&change)?;
                    let mut tx = self.write().await?;
                    match apply_change(&mut tx, &change).await {
                        Ok(outcome) => {
                            finish(tx).await?;
                            Ok(outcome)
                        }
                        Err(e) => {
                            tx.rollback().await.map_err(failed("roll back a change that failed"))?;
                            Err(e)
                        }
                    }
                }

                /// Every change in one transaction, in order: all committed or none.
                async fn commit_changes(&self, changes: &[Change]) -> Result<Vec<CommitOutcome>> {
                    if changes.is_empty() {
                        return Ok(Vec::new());
                    }
                    for change in changes {
                        check_change(change)?;
                    }
                    if changes.iter().all(inbox_only) {
                        return self.commit_inbox(changes).await;
                    }
                    let mut tx = self.write().await?;
                    let mut outcomes = Vec::with_capacity(changes.len());
                    for (i, change) in changes.iter().enumerate() {
                        match apply_change(&mut tx, change).await {
                            Ok(outcome) => outcomes.push(outcome),
                            Err(e) => {
                                tx.rollback().await.map_err(failed("roll back a batch of changes that failed"))?;
                                tracing::debug!(
                                    failed_at = i,
                                    changes = changes.len(),
                                    "a batch of changes was rolled back: none of them is stored"
                                );
                                return Err(e);
                            }
                        }
                    }
                    finish(tx).await?;
                    Ok(outcomes)
                }
                async fn claim(&self, claim: JobClaim<'_>) -> Result<Vec<Job>> {
                    if claim.limit == 0 {
                        return Ok(Vec::new());
                    }
                    let lease_until = claim.now.checked_add(claim.lease).map_err(|e| {
                        StoreError::Database(format!("claim jobs: lease {:?} is out of range: {e}", claim.lease))
                    })?;
                    let mut tx = self.write().await?;
                    let rows = query(DIALECT.claim_jobs)
                        .bind(claim.kind.as_str())
                        .bind(claim.connection)
                        .bind(millis(claim.now))
                        .bind(millis(lease_until))
                        .bind(lease_token(claim.worker))
                        .bind(i64::from(claim.limit))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(failed(format_args!("claim {} jobs", claim.kind)))?;
                    // Read each row inside the claim: one that cannot be read is
                    // finished dead here, saying why, so the rest of its kind still run.
                    let mut jobs = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let (job_id, kind, detail) = match rows::job(row) {
                            Ok(job) => {
                                jobs.push(job);
                                continue;
                            }
                            Err(StoreError::BadJob { job_id, kind, detail }) => (job_id, kind, detail),
                            Err(StoreError::UnknownJobKind { job_id, kind }) => {
                                (job_id, kind, "the kind is none this version knows".to_string())
                            }
                            Err(other) => return Err(other),
                        };
                        query(sql::FINISH_JOB)
                            .bind(job_id)
                            .bind(JobState::Dead.as_str())
                            .bind(job::unreadable_payload_error(job_id, &kind, &detail))
                            .bind(millis(claim.now))
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(format_args!("finish job {job_id}, whose payload cannot be read, dead")))?;
                    }
                    finish(tx).await?;
                    jobs.sort_by_key(|job| (job.next_run_at, job.id));
                    Ok(jobs)
                }

                async fn retry(
                    &self,
                    job_id: i64,
                    lease_token: &str,
                    next_run_at: Timestamp,
                    error: &str,
                    attempt: Attempt,
                    now: Timestamp,
                ) -> Result<()> {
                    let put_back: i64 = match attempt {
                        Attempt::Counted => 0,
                        Attempt::NotCounted => 1,
                    };
                    let mut tx = self.write().await?;
                    let done = query(sql::RETRY_JOB)
                        .bind(job_id)
                        .bind(lease_token)
                        .bind(millis(next_run_at))
                        .bind(error)
                        .bind(millis(now))
                        .bind(put_back)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed(format_args!("put job {job_id} back for a retry")))?;
                    if done.rows_affected() == 0 {
                        let exists = query(sql::JOB_EXISTS)
                            .bind(job_id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(failed(format_args!("look up job {job_id}")))?;
                        return Err(match exists {
                            Some(_) => StoreError::LeaseLost { job_id },
                            None => StoreError::NotFound { what: format!("job {job_id}") },
                        });
                    }
                    finish(tx).await
                }

                async fn release(&self, worker: &str, now: Timestamp) -> Result<ReleasedLeases> {
                    let prefix = token_prefix(worker);
                    let now = millis(now);
                    let mut tx = self.write().await?;
                    let jobs = query(sql::RELEASE_JOBS)
                        .bind(&prefix)
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(failed(format_args!("release the jobs of worker {worker}")))?;
                    let schedules = query(sql::RELEASE_SCHEDULES)
                        .bind(&prefix)
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(failed(format_args!("release the passes of worker {worker}")))?;
                    let mut released = ReleasedLeases {
                        jobs: rows::all(&jobs, |row| Ok((row.int("id")?, row.text("connection")?, row.text("kind")?)))?,
                        schedules: rows::all(&schedules, |row| Ok((row.text("connection")?, row.text("name")?)))?,
                    };
                    finish(tx).await?;
                    released.jobs.sort();
                    released.schedules.sort();
                    Ok(released)
                }

                async fn take_pass(&self, take: ScheduleTake<'_>) -> Result<Option<ScheduleRecord>> {
                    let lease_until = take.now.checked_add(take.lease).map_err(|e| {
                        StoreError::Database(format!("take the {} pass: lease {:?} is out of range: {e}", take.name, take.lease))
                    })?;
                    let now = millis(take.now);
                    let mut tx = self.write().await?;
                    query(sql::ENSURE_SCHEDULE)
                        .bind(take.connection)
                        .bind(take.name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed(format_args!("make the {} pass of {}", take.name, take.connection)))?;
                    let taken = query(sql::TAKE_SCHEDULE)
                        .bind(take.connection)
                        .bind(take.name)
                        .bind(now)
                        .bind(lease_token(take.worker))
                        .bind(millis(lease_until))
                        .bind(take.force)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(failed(format_args!("take the {} pass of {}", take.name, take.connection)))?
                        .map(|row| rows::schedule(&row))
                        .transpose()?;
                    finish(tx).await?;
                    Ok(taken)
                }

                async fn finish_pass(&self, end: ScheduleFinish<'_>) -> Result<()> {
                    let mut tx = self.write().await?;
                    let done = query(sql::FINISH_SCHEDULE)
                        .bind(end.connection)
                        .bind(end.name)
                        .bind(end.lease_token)
                        .bind(millis(end.next_due_at))
                        .bind(end.error)
                        .bind(millis(end.now))
                        .execute(&mut *tx)
                        .await
                        .map_err(failed(format_args!("finish the {} pass of {}", end.name, end.connection)))?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await.map_err(failed("roll back after a lost pass lease"))?;
                        return Err(StoreError::ScheduleLeaseLost { connection: end.connection.to_string(), name: end.name.to_string() });
                    }
                    finish(tx).await
                }

                async fn write_schedule(&self, statement: &'static str, connection: &str, name: &str, at: Timestamp, now: Timestamp, what: &str) -> Result<()> {
                    let mut tx = self.write().await?;
                    query(statement)
                        .bind(connection)
                        .bind(name)
                        .bind(millis(at))
                        .bind(millis(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(failed(format_args!("{what} the {name} pass of {connection}")))?;
                    finish(tx).await
                }

                async fn take(&self, key: &str, reserve: u32, now: Timestamp) -> Result<Option<Timestamp>> {
                    let now = millis(now);
                    let mut tx = self.write().await?;
                    let row = query(DIALECT.lock_budget)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(failed(format_args!("read the rate budget of {key}")))?;
                    let wait = match row {
                        // No known window: go ahead, the response will tell us.
                        None => None,
                        Some(row) => {
                            let reset_at = row.int("reset_at")?;
                            if reset_at <= now {
                                // The window has passed; what is left in the new one is unknown.
                                None
                            } else if row.int("remaining")? > i64::from(reserve) {
                                query(sql::SPEND_BUDGET)
                                    .bind(key)
                                    .bind(now)
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(failed(format_args!("spend the rate budget of {key}")))?;
                                None
                            } else {
                                Some(row.time("reset_at")?)
                            }
                        }
                    };
                    finish(tx).await?;
                    Ok(wait)
                }

                async fn take_counted(&self, key: &str, limit: u32, window: jiff::SignedDuration, reserve: u32, now: Timestamp) -> Result<Option<Timestamp>> {
                    let reset_at = now.checked_add(window).map_err(|e| {
                        StoreError::Database(format!("rate budget of {key}: window {window:?} is out of range: {e}"))
                    })?;
                    let now = millis(now);
                    let mut tx = self.write().await?;
                    query(sql::ENSURE_COUNTED_BUDGET)
                        .bind(key)
                        .bind(i64::from(limit))
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed(format_args!("make the rate budget of {key}")))?;
                    let row = query(DIALECT.lock_budget)
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(failed(format_args!("read the rate budget of {key}")))?;
                    let wait = if row.int("reset_at")? <= now {
                        // No window running: this take starts one.
                        if limit == 0 {
                            return Err(StoreError::Database(format!("rate budget of {key}: a limit of 0 requests never grants one")));
                        }
                        query(sql::START_BUDGET_WINDOW)
                            .bind(key)
                            .bind(i64::from(limit))
                            .bind(i64::from(limit) - 1)
                            .bind(millis(reset_at))
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(format_args!("start a window of the rate budget of {key}")))?;
                        None
                    } else if row.int("remaining")? > i64::from(reserve) {
                        query(sql::SPEND_BUDGET)
                            .bind(key)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(format_args!("spend the rate budget of {key}")))?;
                        None
                    } else {
                        Some(row.time("reset_at")?)
                    };
                    finish(tx).await?;
                    Ok(wait)
                }

                async fn observe(&self, key: &str, limit: u32, remaining: u32, reset_at: Timestamp, now: Timestamp) -> Result<()> {
                    let mut tx = self.write().await?;
                    query(sql::OBSERVE_BUDGET)
                        .bind(key)
                        .bind(i64::from(limit))
                        .bind(i64::from(remaining))
                        .bind(millis(reset_at))
                        .bind(millis(now))
                        .bind(SAME_WINDOW_TOLERANCE_MS)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed(format_args!("record the rate budget of {key}")))?;
                    finish(tx).await
                }

                async fn act(&self, act: ExceptionAct) -> Result<ExceptionActed> {
                    let id = act.id;
                    let at = millis(act.at);
                    let note = act.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
                    let refused = |why: String| StoreError::ActionRefused { exception_id: id, action: act.action.name().to_string(), why };
                    let mut tx = self.write().await?;
                    let before = query(sql::GET_EXCEPTION)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(failed(format_args!("read exception {id}")))?
                        .map(|row| rows::exception(&row))
                        .transpose()?
                        .ok_or_else(|| StoreError::NotFound { what: format!("exception {id}") })?;
                    act.action.check(&before, note).map_err(refused)?;
                    let mut before_json = standing(&before);
                    let mut after_extra = serde_json::Map::new();
                    let changed = match &act.action {
                        ExceptionAction::Acknowledge => query(sql::ACKNOWLEDGE_EXCEPTION).bind(id).bind(at).bind(note),
                        ExceptionAction::Assign { to } => {
                            query(sql::ASSIGN_EXCEPTION).bind(id).bind(to.as_deref().map(str::trim)).bind(note)
                        }
                        ExceptionAction::Resolve => query(sql::END_EXCEPTION).bind(id).bind(ExceptionState::Resolved.as_str()).bind(note).bind(at),
                        ExceptionAction::Ignore => query(sql::END_EXCEPTION).bind(id).bind(ExceptionState::Ignored.as_str()).bind(note).bind(at),
                        ExceptionAction::Retry | ExceptionAction::Edit { .. } => {
                            if let ExceptionAction::Edit { set } = &act.action {
                                let (conn, erp_id) = (&before.connection, &before.record_id);
                                let was = query(sql::LIST_ORDER_OVERRIDES)
                                    .bind(conn.as_str())
                                    .bind(erp_id.as_str())
                                    .fetch_all(&mut *tx)
                                    .await
                                    .map_err(failed(format_args!("read the overrides of order {erp_id}")))?;
                                let was = crate::backend::overrides_json(&was)?;
                                let mut now = was.clone();
                                for (field, value) in set {
                                    match value.as_deref().map(str::trim) {
                                        Some(value) => query(sql::SET_ORDER_OVERRIDE)
                                            .bind(conn.as_str())
                                            .bind(erp_id.as_str())
                                            .bind(field.as_str())
                                            .bind(value)
                                            .bind(act.actor.as_str())
                                            .bind(at)
                                            .execute(&mut *tx)
                                            .await,
                                        None => query(sql::REMOVE_ORDER_OVERRIDE).bind(conn.as_str()).bind(erp_id.as_str()).bind(field.as_str()).execute(&mut *tx).await,
                                    }
                                    .map_err(failed(format_args!("set {field} on order {erp_id}")))?;
                                    // What the row now holds, as the audit log keeps it.
                                    let fields = now.as_object_mut().expect("an object");
                                    match value.as_deref().map(str::trim) {
                                        Some(value) => fields.insert(field.clone(), serde_json::Value::String(value.to_string())),
                                        None => fields.remove(field),
                                    };
                                }
                                query(sql::FORGET_PUSHED_HASH)
                                    .bind(conn.as_str())
                                    .bind(erp_id.as_str())
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(failed(format_args!("mark order {erp_id} to be pushed again")))?;
                                before_json["overrides"] = was;
                                after_extra.insert("overrides".into(), now);
                            }
                            let job_id = before.job_id.unwrap_or_default();
                            let job = query(sql::JOB_STANDING)
                                .bind(job_id)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(failed(format_args!("read job {job_id} of exception {id}")))?
                                .ok_or_else(|| refused(format!("the job behind exception {id} (job {job_id}) is no longer in the store")))?;
                            let job_before = serde_json::json!({
                                "id": job_id,
                                "kind": job.text("kind")?,
                                "state": job.text("state")?,
                                "attempts": job.int("attempts")?,
                                "next_run_at": job.time("next_run_at")?.to_string(),
                                "last_error": job.opt_text("last_error")?,
                            });
                            let rearmed = query(sql::REARM_JOB)
                                .bind(job_id)
                                .bind(at)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(failed(format_args!("re-arm job {job_id} of exception {id}")))?;
                            if rearmed.is_none() {
                                return Err(refused(format!(
                                    "the job behind exception {id} (job {job_id}, {}) is {}: {}",
                                    job_before["kind"].as_str().unwrap_or_default(),
                                    job_before["state"].as_str().unwrap_or_default(),
                                    if job_before["state"] == "running" {
                                        "it is being worked on now; its outcome closes or refreshes the exception"
                                    } else {
                                        "it succeeded; the exception closes when its condition is checked again"
                                    }
                                )));
                            }
                            before_json["job"] = job_before.clone();
                            let mut job_after = job_before;
                            if job_after["state"] == "dead" {
                                job_after["attempts"] = serde_json::json!(0);
                            }
                            job_after["state"] = serde_json::json!("pending");
                            job_after["next_run_at"] = serde_json::json!(act.at.to_string());
                            after_extra.insert("job".into(), job_after);
                            query(sql::NOTE_EXCEPTION).bind(id).bind(note)
                        }
                    };
                    let after = changed
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(failed(format_args!("{} exception {id}", act.action.name())))?
                        .map(|row| rows::exception(&row))
                        .transpose()?
                        .ok_or_else(|| refused(format!("exception {id} changed while this action was taken; read it again")))?;
                    let mut after_json = standing(&after);
                    after_json.as_object_mut().expect("an object").extend(after_extra);
                    if let ExceptionAction::Retry | ExceptionAction::Edit { .. } = act.action {
                        before_json.as_object_mut().expect("an object").remove("note");
                    }
                    let audit_id =
                        audit(&mut tx, id, &after.connection, at, &act.actor, act.action.name(), &before_json, &after_json, note).await?;
                    let message = {
                        let (actor, kind) = (&act.actor, after.kind.code());
                        let what = match &act.action {
                            ExceptionAction::Acknowledge => format!("{actor} acknowledged exception {id} ({kind})"),
                            ExceptionAction::Assign { to: Some(to) } => format!("{actor} assigned exception {id} ({kind}) to {to}"),
                            ExceptionAction::Assign { to: None } => format!("{actor} unassigned exception {id} ({kind})"),
                            ExceptionAction::Retry => format!("{actor} retried the job behind exception {id} ({kind})"),
                            ExceptionAction::Edit { set } => format!(
                                "{actor} edited order {} ({}) behind exception {id} ({kind}) and retried its job",
                                after.record_id,
                                set.iter()
                                    .map(|(f, v)| match v {
                                        Some(v) => format!("{f} = {v:?}"),
                                        None => format!("{f} removed"),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            ExceptionAction::Resolve => format!("{actor} resolved exception {id} ({kind})"),
                            ExceptionAction::Ignore => format!("{actor} ignored exception {id} ({kind})"),
                        };
                        match note {
                            Some(note) => format!("{what}: {note}"),
                            None => what,
                        }
                    };
                    // The record's timeline says who did what, and why.
                    query(sql::INSERT_EVENT)
                        .bind(&after.connection)
                        .bind(&after.record_type)
                        .bind(&after.record_id)
                        .bind(EventKind::exception_action(&act.action).as_str())
                        .bind(serde_json::json!({
                            "message": message,
                            "exception_id": id,
                            "exception_kind": after.kind.code(),
                            "actor": act.actor,
                            "action": act.action.name(),
                            "assignee": after.assignee,
                            "job": after_json.get("job"),
                            "overrides": after_json.get("overrides"),
                            "note": note,
                        }))
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed(format_args!("record the {} of exception {id}", act.action.name())))?;
                    finish(tx).await?;
                    let audit = ExceptionAudit {
                        id: audit_id,
                        exception_id: id,
                        connection: after.connection.clone(),
                        at: act.at,
                        actor: act.actor.clone(),
                        action: act.action.name().to_string(),
                        before: before_json,
                        after: after_json,
                        note: note.map(str::to_string),
                    };
                    Ok(ExceptionActed { exception: after, audit })
                }
            }

            /// Who the audit log names for what shipledger did by itself.
            const SHIPLEDGER: &str = "shipledger";

            /// An exception's fields an action can change, as the audit log keeps them.
            fn standing(e: &ExceptionRecord) -> serde_json::Value {
                serde_json::json!({"state": e.state.as_str(), "assignee": e.assignee, "note": e.note})
            }

            /// Append one row to the exception audit log; its id.
            #[allow(clippy::too_many_arguments)]
            async fn audit(
                tx: &mut Tx,
                exception_id: i64,
                conn: &str,
                at: i64,
                actor: &str,
                action: &str,
                before: &serde_json::Value,
                after: &serde_json::Value,
                note: Option<&str>,
            ) -> Result<i64> {
                query(sql::INSERT_EXCEPTION_ACTION)
                    .bind(exception_id)
                    .bind(conn)
                    .bind(at)
                    .bind(actor)
                    .bind(action)
                    .bind(before)
                    .bind(after)
                    .bind(note)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(failed(format_args!("record the {action} of exception {exception_id} in its audit log")))?
                    .int("id")
            }

            async fn upsert_order(tx: &mut Tx, conn: &str, order: &OrderUpsert, now: i64) -> Result<()> {
                query(sql::UPSERT_ORDER)
                    .bind(conn)
                    .bind(&order.erp_id)
                    .bind(&order.number)
                    .bind(order.state.as_str())
                    .bind(&order.snapshot)
                    .bind(&order.snapshot_hash)
                    .bind(millis(order.erp_updated_at))
                    .bind(&order.order_key)
                    .bind(order.ss_order_id)
                    .bind(&order.ss_status)
                    .bind(&order.payment)
                    .bind(&order.pushed_hash)
                    .bind(order.released_at.map(millis))
                    .bind(order.pushed_at.map(millis))
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(failed(format_args!("save order {} ({})", order.number, order.erp_id)))?;
                let Some(lines) = &order.lines else { return Ok(()) };
                query(sql::DELETE_ORDER_LINES)
                    .bind(conn)
                    .bind(&order.erp_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(failed(format_args!("replace the lines of order {}", order.number)))?;
                for line in lines {
                    query(sql::INSERT_ORDER_LINE)
                        .bind(conn)
                        .bind(&order.erp_id)
                        .bind(&line.line_id)
                        .bind(&line.sku)
                        .bind(&line.name)
                        .bind(line.quantity)
                        .bind(line.unit_weight_mg)
                        .bind(line.unit_price_minor)
                        .bind(&line.currency)
                        .bind(line.physical)
                        .execute(&mut **tx)
                        .await
                        .map_err(failed(format_args!(
                            "save line {} of order {}",
                            line.line_id, order.number
                        )))?;
                }
                Ok(())
            }

            async fn upsert_shipment(tx: &mut Tx, conn: &str, shipment: &ShipmentUpsert, now: i64) -> Result<()> {
                let lines = to_json(&shipment.lines, format_args!("save the lines of shipment {}", shipment.shipment_key))?;
                query(sql::UPSERT_SHIPMENT)
                    .bind(conn)
                    .bind(&shipment.shipment_key)
                    .bind(shipment.kind.as_str())
                    .bind(shipment.ss_id)
                    .bind(shipment.ss_order_id)
                    .bind(&shipment.ss_order_key)
                    .bind(&shipment.erp_id)
                    .bind(&shipment.carrier)
                    .bind(&shipment.service)
                    .bind(&shipment.tracking_number)
                    .bind(shipment.ship_date.map(date_text))
                    .bind(shipment.cost_minor)
                    .bind(&shipment.cost_currency)
                    .bind(millis(shipment.ss_created_at))
                    .bind(shipment.voided)
                    .bind(shipment.voided_at.map(millis))
                    .bind(lines)
                    .bind(shipment.first_scan_at.map(millis))
                    .bind(&shipment.tracking_status)
                    .bind(shipment.state.as_str())
                    .bind(&shipment.erp_fulfilment_id)
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(failed(format_args!("save shipment {}", shipment.shipment_key)))?;
                Ok(())
            }

            impl Store for $store {
                fn ensure_connection<'a>(&'a self, name: &'a str, now: Timestamp) -> BoxFuture<'a, Result<()>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        query(sql::ENSURE_CONNECTION)
                            .bind(name)
                            .bind(millis(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(format_args!("register connection {name}")))?;
                        finish(tx).await
                    })
                }

                fn commit<'a>(&'a self, change: Change) -> BoxFuture<'a, Result<CommitOutcome>> {
                    Box::pin(self.commit_change(change))
                }

                fn commit_batch<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<Vec<CommitOutcome>>> {
                    Box::pin(self.commit_changes(changes))
                }

                fn get_order<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Option<OrderRecord>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_ORDER).bind(connection).bind(erp_id))
                            .await
                            .map_err(failed(format_args!("read order {erp_id}")))?
                            .map(|row| rows::order(&row))
                            .transpose()
                    })
                }

                fn get_order_by_key<'a>(&'a self, connection: &'a str, order_key: &'a str) -> BoxFuture<'a, Result<Option<OrderRecord>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_ORDER_BY_KEY).bind(connection).bind(order_key))
                            .await
                            .map_err(failed(format_args!("read the order with key {order_key}")))?
                            .map(|row| rows::order(&row))
                            .transpose()
                    })
                }

                fn list_orders<'a>(&'a self, filter: OrderFilter) -> BoxFuture<'a, Result<Vec<OrderRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_ORDERS)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.state.map(OrderState::as_str))
                                    .bind(filter.number_prefix.as_deref())
                                    .bind(filter.ss_order_id)
                                    .bind(sql_limit(filter.limit))
                                    .bind(i64::from(filter.offset)),
                            )
                            .await
                            .map_err(failed("list orders"))?;
                        rows::all(&found, rows::order)
                    })
                }

                fn order_lines<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Vec<OrderLineRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::ORDER_LINES).bind(connection).bind(erp_id))
                            .await
                            .map_err(failed(format_args!("read the lines of order {erp_id}")))?;
                        rows::all(&found, rows::order_line)
                    })
                }

                fn count_orders_by_state<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<(OrderState, u64)>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::COUNT_ORDERS_BY_STATE).bind(connection))
                            .await
                            .map_err(failed("count orders by state"))?;
                        let mut counts = rows::all(&found, |row| {
                            Ok((row.parsed("state", OrderState::parse)?, rows::count(row)?))
                        })?;
                        counts.sort();
                        Ok(counts)
                    })
                }

                fn claim_jobs<'a>(&'a self, claim: JobClaim<'a>) -> BoxFuture<'a, Result<Vec<Job>>> {
                    Box::pin(self.claim(claim))
                }

                fn retry_job<'a>(
                    &'a self,
                    job_id: i64,
                    lease_token: &'a str,
                    next_run_at: Timestamp,
                    error: &'a str,
                    attempt: Attempt,
                    now: Timestamp,
                ) -> BoxFuture<'a, Result<()>> {
                    Box::pin(self.retry(job_id, lease_token, next_run_at, error, attempt, now))
                }

                fn get_job<'a>(&'a self, job_id: i64) -> BoxFuture<'a, Result<Option<Job>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_JOB).bind(job_id))
                            .await
                            .map_err(failed(format_args!("read job {job_id}")))?
                            .map(|row| rows::job(&row))
                            .transpose()
                    })
                }

                fn list_jobs<'a>(&'a self, filter: JobFilter) -> BoxFuture<'a, Result<Vec<Job>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_JOBS)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.kind.map(JobKind::as_str))
                                    .bind(filter.state.map(JobState::as_str))
                                    .bind(sql_limit(filter.limit)),
                            )
                            .await
                            .map_err(failed("list jobs"))?;
                        rows::all(&found, rows::job)
                    })
                }

                fn count_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<(String, JobState, u64)>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::COUNT_JOBS).bind(connection))
                            .await
                            .map_err(failed("count jobs"))?;
                        let mut counts = rows::all(&found, |row| {
                            Ok((row.text("kind")?, row.parsed("state", JobState::parse)?, rows::count(row)?))
                        })?;
                        counts.sort();
                        Ok(counts)
                    })
                }

                fn unknown_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<UnknownJobs>>> {
                    Box::pin(async move {
                        let kinds = self
                            .reader()
                            .fetch_all(query(sql::COUNT_LIVE_JOBS).bind(connection))
                            .await
                            .map_err(failed("count pending and running jobs by kind"))?;
                        let kinds = rows::all(&kinds, |row| Ok((row.text("kind")?, rows::count(row)?)))?;
                        let mut unknown = Vec::new();
                        for (kind, count) in kinds.into_iter().filter(|(kind, _)| JobKind::parse(kind).is_none()) {
                            let found = self
                                .reader()
                                .fetch_all(
                                    query(sql::LIVE_JOB_IDS)
                                        .bind(connection)
                                        .bind(&kind)
                                        .bind(UNKNOWN_IDS_KEPT as i64),
                                )
                                .await
                                .map_err(failed(format_args!("list the {kind} jobs")))?;
                            let ids = rows::all(&found, |row| row.int("id"))?;
                            unknown.push(UnknownJobs { kind, count, ids });
                        }
                        unknown.sort_by(|a, b| a.kind.cmp(&b.kind));
                        Ok(unknown)
                    })
                }

                fn unreadable_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<UnknownJobs>>> {
                    Box::pin(async move {
                        let pattern = format!("job %{}%", job::UNREADABLE_PAYLOAD);
                        let kinds = self
                            .reader()
                            .fetch_all(query(sql::COUNT_UNREADABLE_JOBS).bind(connection).bind(&pattern))
                            .await
                            .map_err(failed("count dead jobs whose payload cannot be read"))?;
                        let kinds = rows::all(&kinds, |row| Ok((row.text("kind")?, rows::count(row)?)))?;
                        let mut unreadable = Vec::with_capacity(kinds.len());
                        for (kind, count) in kinds {
                            let found = self
                                .reader()
                                .fetch_all(
                                    query(sql::UNREADABLE_JOB_IDS)
                                        .bind(connection)
                                        .bind(&kind)
                                        .bind(&pattern)
                                        .bind(UNKNOWN_IDS_KEPT as i64),
                                )
                                .await
                                .map_err(failed(format_args!("list the unreadable {kind} jobs")))?;
                            let ids = rows::all(&found, |row| row.int("id"))?;
                            unreadable.push(UnknownJobs { kind, count, ids });
                        }
                        unreadable.sort_by(|a, b| a.kind.cmp(&b.kind));
                        Ok(unreadable)
                    })
                }

                fn runnable_jobs<'a>(&'a self, connection: &'a str, kind: JobKind, now: Timestamp) -> BoxFuture<'a, Result<RunnableJobs>> {
                    Box::pin(async move {
                        let row = self
                            .reader()
                            .fetch_one(query(sql::RUNNABLE_JOBS).bind(connection).bind(kind.as_str()).bind(millis(now)))
                            .await
                            .map_err(failed(format_args!("count the runnable {kind} jobs")))?;
                        Ok(RunnableJobs {
                            count: rows::count(&row)?,
                            first_planned_at: row.opt_time("first_planned")?,
                            last_planned_at: row.opt_time("last_planned")?,
                        })
                    })
                }

                fn job_stats<'a>(&'a self) -> BoxFuture<'a, Result<Vec<JobStats>>> {
                    Box::pin(async move {
                        let found = self.reader().fetch_all(query(sql::JOB_STATS)).await.map_err(failed("count pending and running jobs"))?;
                        let mut stats = rows::all(&found, |row| {
                            Ok(JobStats {
                                connection: row.text("connection")?,
                                kind: row.text("kind")?,
                                state: row.parsed("state", JobState::parse)?,
                                count: rows::count(row)?,
                                earliest_run_at: row.opt_time("earliest")?,
                            })
                        })?;
                        stats.sort();
                        Ok(stats)
                    })
                }

                fn renew_jobs<'a>(&'a self, lease_token: &'a str, lease_until: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<Vec<i64>>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        let rows = query(sql::RENEW_JOBS)
                            .bind(lease_token)
                            .bind(millis(lease_until))
                            .bind(millis(now))
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(failed("renew the leases of a claim's jobs"))?;
                        let mut held = rows::all(&rows, |row| row.int("id"))?;
                        finish(tx).await?;
                        held.sort();
                        Ok(held)
                    })
                }

                fn release_leases<'a>(&'a self, worker: &'a str, now: Timestamp) -> BoxFuture<'a, Result<ReleasedLeases>> {
                    Box::pin(self.release(worker, now))
                }

                fn take_schedule<'a>(&'a self, take: ScheduleTake<'a>) -> BoxFuture<'a, Result<Option<ScheduleRecord>>> {
                    Box::pin(self.take_pass(take))
                }

                fn finish_schedule<'a>(&'a self, finish: ScheduleFinish<'a>) -> BoxFuture<'a, Result<()>> {
                    Box::pin(self.finish_pass(finish))
                }

                fn renew_schedule<'a>(
                    &'a self,
                    connection: &'a str,
                    name: &'a str,
                    lease_token: &'a str,
                    lease_until: Timestamp,
                    now: Timestamp,
                ) -> BoxFuture<'a, Result<bool>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        let done = query(sql::RENEW_SCHEDULE)
                            .bind(connection)
                            .bind(name)
                            .bind(lease_token)
                            .bind(millis(lease_until))
                            .bind(millis(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(format_args!("renew the lease on the {name} pass of {connection}")))?;
                        finish(tx).await?;
                        Ok(done.rows_affected() > 0)
                    })
                }

                fn record_schedule_success<'a>(&'a self, connection: &'a str, name: &'a str, at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>> {
                    Box::pin(self.write_schedule(sql::RECORD_SCHEDULE_SUCCESS, connection, name, at, now, "record a success of"))
                }

                fn hasten_schedule<'a>(&'a self, connection: &'a str, name: &'a str, at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>> {
                    Box::pin(self.write_schedule(sql::HASTEN_SCHEDULE, connection, name, at, now, "bring forward"))
                }

                fn get_schedule<'a>(&'a self, connection: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ScheduleRecord>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_SCHEDULE).bind(connection).bind(name))
                            .await
                            .map_err(failed(format_args!("read the {name} pass of {connection}")))?
                            .map(|row| rows::schedule(&row))
                            .transpose()
                    })
                }

                fn list_schedules<'a>(&'a self, connection: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ScheduleRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::LIST_SCHEDULES).bind(connection))
                            .await
                            .map_err(failed("list the recurring passes"))?;
                        rows::all(&found, rows::schedule)
                    })
                }

                fn get_watermark<'a>(&'a self, connection: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_WATERMARK).bind(connection).bind(name))
                            .await
                            .map_err(failed(format_args!("read watermark {name}")))?
                            .map(|row| row.text("value"))
                            .transpose()
                    })
                }

                fn timeline<'a>(&'a self, connection: &'a str, record_type: &'a str, record_id: &'a str) -> BoxFuture<'a, Result<Vec<EventRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::TIMELINE).bind(connection).bind(record_type).bind(record_id))
                            .await
                            .map_err(failed(format_args!("read the timeline of {record_type} {record_id}")))?;
                        rows::all(&found, rows::event)
                    })
                }

                fn order_timeline<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Vec<TimelineEntry>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::ORDER_TIMELINE).bind(connection).bind(erp_id))
                            .await
                            .map_err(failed(format_args!("read the timeline of order {erp_id}")))?;
                        rows::all(&found, rows::timeline_entry)
                    })
                }

                fn list_exceptions<'a>(&'a self, filter: ExceptionFilter) -> BoxFuture<'a, Result<Vec<ExceptionRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_EXCEPTIONS)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.state.map(ExceptionState::as_str))
                                    .bind(filter.kind.map(|kind| kind.code()))
                                    .bind(filter.owner.map(enum_text))
                                    .bind(filter.record_type.as_deref())
                                    .bind(filter.record_id.as_deref())
                                    .bind(filter.assignee.as_deref())
                                    .bind(filter.after_id)
                                    .bind(i64::from(filter.live))
                                    .bind(sql_limit(filter.limit)),
                            )
                            .await
                            .map_err(failed("list exceptions"))?;
                        rows::all(&found, rows::exception)
                    })
                }

                fn count_open_exceptions<'a>(&'a self) -> BoxFuture<'a, Result<Vec<OpenExceptions>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::COUNT_OPEN_EXCEPTIONS))
                            .await
                            .map_err(failed("count open exceptions"))?;
                        let mut counts = rows::all(&found, |row| {
                            Ok(OpenExceptions {
                                connection: row.text("connection")?,
                                kind: row.parsed("kind", shipledger_core::exception::ExceptionKind::parse)?,
                                count: rows::count(row)?,
                            })
                        })?;
                        counts.sort();
                        Ok(counts)
                    })
                }

                fn get_exception<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<ExceptionRecord>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_EXCEPTION).bind(id))
                            .await
                            .map_err(failed(format_args!("read exception {id}")))?
                            .map(|row| rows::exception(&row))
                            .transpose()
                    })
                }

                fn create_api_token<'a>(&'a self, token: NewApiToken, now: Timestamp) -> BoxFuture<'a, Result<ApiTokenRecord>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        let row = query(sql::INSERT_API_TOKEN)
                            .bind(&token.name)
                            .bind(token.role.as_str())
                            .bind(token.scope.to_json())
                            .bind(&token.hash)
                            .bind(&token.prefix)
                            .bind(millis(now))
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(|e| match e {
                                sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::TokenNameTaken { name: token.name.clone() },
                                other => failed(format_args!("record API token {}", token.name))(other),
                            })?;
                        let record = rows::api_token(&row)?;
                        finish(tx).await?;
                        Ok(record)
                    })
                }

                fn list_api_tokens<'a>(&'a self) -> BoxFuture<'a, Result<Vec<ApiTokenRecord>>> {
                    Box::pin(async move {
                        let found = self.reader().fetch_all(query(sql::LIST_API_TOKENS)).await.map_err(failed("list API tokens"))?;
                        rows::all(&found, rows::api_token)
                    })
                }

                fn api_token_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<ApiTokenRecord>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::API_TOKEN_BY_HASH).bind(hash))
                            .await
                            .map_err(failed("look up an API token"))?
                            .map(|row| rows::api_token(&row))
                            .transpose()
                    })
                }

                fn revoke_api_token<'a>(&'a self, id: i64, now: Timestamp) -> BoxFuture<'a, Result<ApiTokenRecord>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        let row = query(sql::REVOKE_API_TOKEN)
                            .bind(id)
                            .bind(millis(now))
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(failed(format_args!("revoke API token {id}")))?
                            .ok_or_else(|| StoreError::NotFound { what: format!("live API token {id}") })?;
                        let record = rows::api_token(&row)?;
                        finish(tx).await?;
                        Ok(record)
                    })
                }

                fn touch_api_token<'a>(&'a self, id: i64, now: Timestamp) -> BoxFuture<'a, Result<()>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        query(sql::TOUCH_API_TOKEN)
                            .bind(id)
                            .bind(millis(now))
                            .bind(millis(now) - 60_000)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(format_args!("note the use of API token {id}")))?;
                        finish(tx).await
                    })
                }

                fn stage_ss_orders<'a>(&'a self, connection: &'a str, orders: &'a [StagedSsOrder]) -> BoxFuture<'a, Result<()>> {
                    Box::pin(async move {
                        // One statement updates a row once: the last copy of an id counts.
                        let mut rows = Vec::with_capacity(orders.len());
                        for o in crate::backend::last_of(orders, |o| o.view.ss_order_id) {
                            rows.push((o, to_json(&o.view, format_args!("staged ShipStation order {}", o.view.ss_order_id))?));
                        }
                        let mut tx = self.write().await?;
                        for chunk in rows.chunks(crate::backend::STAGE_ROWS_PER_STATEMENT) {
                            let mut insert = sqlx::QueryBuilder::<$db>::new(sql::STAGE_SS_ORDER_INTO);
                            insert.push_values(chunk, |mut row, (o, body)| {
                                row.push_bind(connection)
                                    .push_bind(o.view.ss_order_id)
                                    .push_bind(o.view.order_key.as_deref())
                                    .push_bind(&o.root_key)
                                    .push_bind(o.view.parent_id)
                                    .push_bind(o.view.merged_into)
                                    .push_bind(millis(o.modified_at))
                                    .push_bind(body);
                            });
                            insert.push(sql::STAGE_SS_ORDER_CONFLICT);
                            insert
                                .build()
                                .execute(&mut *tx)
                                .await
                                .map_err(failed(format_args!("stage {} ShipStation orders (from {})", chunk.len(), chunk[0].0.view.ss_order_id)))?;
                        }
                        finish(tx).await
                    })
                }

                fn stage_ss_merges<'a>(&'a self, connection: &'a str, into: i64, absorbed: &'a [i64], modified_at: Timestamp) -> BoxFuture<'a, Result<()>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        for id in absorbed {
                            let stub = shipledger_core::reconcile::SsOrderView {
                                ss_order_id: *id,
                                order_key: None,
                                order_number: String::new(),
                                store_id: None,
                                status: "merged".into(),
                                parent_id: None,
                                merged_into: Some(into),
                                created_at: None,
                                ship_by: None,
                            };
                            query(sql::STAGE_SS_MERGE)
                                .bind(connection)
                                .bind(*id)
                                .bind(into)
                                .bind(millis(modified_at))
                                .bind(to_json(&stub, "a merged ShipStation order")?)
                                .execute(&mut *tx)
                                .await
                                .map_err(failed(format_args!("stage ShipStation order {id} merged into {into}")))?;
                        }
                        finish(tx).await
                    })
                }

                fn stage_ss_shipments<'a>(&'a self, connection: &'a str, shipments: &'a [StagedSsShipment]) -> BoxFuture<'a, Result<()>> {
                    Box::pin(async move {
                        let mut rows = Vec::with_capacity(shipments.len());
                        for s in crate::backend::last_of(shipments, |s| s.view.shipment_id) {
                            rows.push((s, to_json(&s.view, format_args!("staged ShipStation label {}", s.view.shipment_id))?));
                        }
                        let mut tx = self.write().await?;
                        for chunk in rows.chunks(crate::backend::STAGE_ROWS_PER_STATEMENT) {
                            let mut insert = sqlx::QueryBuilder::<$db>::new(sql::STAGE_SS_SHIPMENT_INTO);
                            insert.push_values(chunk, |mut row, (s, body)| {
                                row.push_bind(connection).push_bind(s.view.shipment_id).push_bind(s.view.ss_order_id).push_bind(&s.root_key).push_bind(body);
                            });
                            insert.push(sql::STAGE_SS_SHIPMENT_CONFLICT);
                            insert
                                .build()
                                .execute(&mut *tx)
                                .await
                                .map_err(failed(format_args!("stage {} ShipStation labels (from {})", chunk.len(), chunk[0].0.view.shipment_id)))?;
                        }
                        finish(tx).await
                    })
                }

                fn stage_erp_orders<'a>(&'a self, connection: &'a str, orders: &'a [StagedErpOrder]) -> BoxFuture<'a, Result<()>> {
                    Box::pin(async move {
                        let mut rows = Vec::with_capacity(orders.len());
                        for o in crate::backend::last_of(orders, |o| o.view.erp_id.clone()) {
                            rows.push((o, to_json(&o.view, format_args!("staged ERP order {}", o.view.erp_id))?));
                        }
                        let mut tx = self.write().await?;
                        for chunk in rows.chunks(crate::backend::STAGE_ROWS_PER_STATEMENT) {
                            let mut insert = sqlx::QueryBuilder::<$db>::new(sql::STAGE_ERP_ORDER_INTO);
                            insert.push_values(chunk, |mut row, (o, body)| {
                                row.push_bind(connection).push_bind(&o.view.erp_id).push_bind(&o.order_key).push_bind(millis(o.view.updated_at)).push_bind(body);
                            });
                            insert.push(sql::STAGE_ERP_ORDER_CONFLICT);
                            insert
                                .build()
                                .execute(&mut *tx)
                                .await
                                .map_err(failed(format_args!("stage {} ERP orders (from {})", chunk.len(), chunk[0].0.view.erp_id)))?;
                        }
                        finish(tx).await
                    })
                }

                fn resolve_recon_keys<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<ResolvedKeys>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        let mut moved = [0u64; 3];
                        for (n, (statement, what)) in [
                            (sql::RESOLVE_SPLIT_CHILDREN, "move split children under their parents"),
                            (sql::RESOLVE_MERGED, "move merged orders under their own keys"),
                            (sql::RESOLVE_SHIPMENTS, "move labels under their orders' keys"),
                        ]
                        .into_iter()
                        .enumerate()
                        {
                            moved[n] = query(statement).bind(connection).execute(&mut *tx).await.map_err(failed(what))?.rows_affected();
                        }
                        let [split_children, merged, shipments] = moved;
                        finish(tx).await?;
                        Ok(ResolvedKeys { split_children, merged, shipments })
                    })
                }

                fn page_ss_orders<'a>(&'a self, connection: &'a str, after: Option<(&'a str, i64)>, limit: u32) -> BoxFuture<'a, Result<Vec<StagedSsOrder>>> {
                    Box::pin(async move {
                        let (key, id) = after.unwrap_or(("", i64::MIN));
                        let found = self
                            .reader()
                            .fetch_all(query(sql::PAGE_SS_ORDERS).bind(connection).bind(key).bind(id).bind(sql_limit(limit)))
                            .await
                            .map_err(failed("read the reconciler's ShipStation orders"))?;
                        rows::all(&found, |row| {
                            let mut view: shipledger_core::reconcile::SsOrderView = row.json_as("body")?;
                            view.merged_into = row.opt_int("merged_into")?;
                            Ok(StagedSsOrder { root_key: row.text("root_key")?, modified_at: row.time("modified_at")?, view })
                        })
                    })
                }

                fn page_ss_shipments<'a>(&'a self, connection: &'a str, after: Option<(&'a str, i64)>, limit: u32) -> BoxFuture<'a, Result<Vec<StagedSsShipment>>> {
                    Box::pin(async move {
                        let (key, id) = after.unwrap_or(("", i64::MIN));
                        let found = self
                            .reader()
                            .fetch_all(query(sql::PAGE_SS_SHIPMENTS).bind(connection).bind(key).bind(id).bind(sql_limit(limit)))
                            .await
                            .map_err(failed("read the reconciler's ShipStation labels"))?;
                        rows::all(&found, |row| Ok(StagedSsShipment { root_key: row.text("root_key")?, view: row.json_as("body")? }))
                    })
                }

                fn page_erp_orders<'a>(&'a self, connection: &'a str, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<StagedErpOrder>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::PAGE_ERP_ORDERS).bind(connection).bind(after.unwrap_or("")).bind(sql_limit(limit)))
                            .await
                            .map_err(failed("read the reconciler's ERP orders"))?;
                        rows::all(&found, |row| Ok(StagedErpOrder { order_key: row.text("order_key")?, view: row.json_as("body")? }))
                    })
                }

                fn page_ledger_orders<'a>(&'a self, connection: &'a str, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<(String, shipledger_core::reconcile::LedgerSide)>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::PAGE_LEDGER_ORDERS).bind(connection).bind(after.unwrap_or("")).bind(sql_limit(limit)))
                            .await
                            .map_err(failed("read the ledger's orders by key"))?;
                        rows::all(&found, |row| {
                            Ok((
                                row.text("order_key")?,
                                shipledger_core::reconcile::LedgerSide {
                                    erp_id: row.text("erp_id")?,
                                    number: row.text("number")?,
                                    state: row.text("state")?,
                                    ss_order_id: row.opt_int("ss_order_id")?,
                                    pushed_at: row.opt_time("pushed_at")?,
                                },
                            ))
                        })
                    })
                }

                fn start_reconcile_run<'a>(&'a self, connection: &'a str, mode: ReconcileMode, since: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<ReconcileRun>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        let row = query(sql::START_RECONCILE_RUN)
                            .bind(connection)
                            .bind(mode.as_str())
                            .bind(millis(since))
                            .bind(millis(now))
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(failed(format_args!("start a reconcile run of {connection}")))?;
                        let run = rows::reconcile_run(&row)?;
                        finish(tx).await?;
                        Ok(run)
                    })
                }

                fn abandon_reconcile_runs<'a>(&'a self, connection: &'a str, why: &'a str, now: Timestamp) -> BoxFuture<'a, Result<u64>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        let n = query(sql::ABANDON_RECONCILE_RUNS)
                            .bind(connection)
                            .bind(why)
                            .bind(millis(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(failed(format_args!("mark {connection}'s unfinished reconcile runs failed")))?
                            .rows_affected();
                        finish(tx).await?;
                        Ok(n)
                    })
                }

                fn finish_reconcile_run<'a>(&'a self, id: i64, state: ReconcileState, stats: serde_json::Value, error: Option<String>, now: Timestamp) -> BoxFuture<'a, Result<ReconcileRun>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        let row = query(sql::FINISH_RECONCILE_RUN)
                            .bind(id)
                            .bind(state.as_str())
                            .bind(&stats)
                            .bind(error.as_deref())
                            .bind(millis(now))
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(failed(format_args!("finish reconcile run {id}")))?
                            .ok_or_else(|| StoreError::NotFound { what: format!("reconcile run {id}") })?;
                        let run = rows::reconcile_run(&row)?;
                        finish(tx).await?;
                        Ok(run)
                    })
                }

                fn get_reconcile_run<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<ReconcileRun>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_RECONCILE_RUN).bind(id))
                            .await
                            .map_err(failed(format_args!("read reconcile run {id}")))?
                            .map(|row| rows::reconcile_run(&row))
                            .transpose()
                    })
                }

                fn list_reconcile_runs<'a>(&'a self, filter: ReconcileRunFilter) -> BoxFuture<'a, Result<Vec<ReconcileRun>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_RECONCILE_RUNS)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.before_id)
                                    .bind(sql_limit(filter.limit))
                                    .bind(filter.mode.map(|m| m.as_str()))
                                    .bind(filter.state.map(|s| s.as_str())),
                            )
                            .await
                            .map_err(failed("list reconcile runs"))?;
                        rows::all(&found, rows::reconcile_run)
                    })
                }

                fn add_reconcile_findings<'a>(&'a self, run_id: i64, connection: &'a str, findings: &'a [shipledger_core::reconcile::Finding]) -> BoxFuture<'a, Result<()>> {
                    Box::pin(async move {
                        let mut tx = self.write().await?;
                        for f in findings {
                            query(sql::INSERT_RECONCILE_FINDING)
                                .bind(run_id)
                                .bind(connection)
                                .bind(f.kind.code())
                                .bind(f.kind.owner().to_string())
                                .bind(&f.record_type)
                                .bind(&f.record_id)
                                .bind(&f.detail)
                                .execute(&mut *tx)
                                .await
                                .map_err(failed(format_args!("record a {} finding of run {run_id}", f.kind)))?;
                        }
                        finish(tx).await
                    })
                }

                fn list_reconcile_findings<'a>(&'a self, filter: ReconcileFindingFilter) -> BoxFuture<'a, Result<Vec<ReconcileFindingRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_RECONCILE_FINDINGS)
                                    .bind(filter.run_id)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.kind.map(|k| k.code()))
                                    .bind(filter.after_id)
                                    .bind(sql_limit(filter.limit)),
                            )
                            .await
                            .map_err(failed("list reconcile findings"))?;
                        rows::all(&found, rows::reconcile_finding)
                    })
                }

                fn act_on_exception<'a>(&'a self, act: ExceptionAct) -> BoxFuture<'a, Result<ExceptionActed>> {
                    Box::pin(self.act(act))
                }

                fn order_overrides<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<std::collections::BTreeMap<String, String>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::LIST_ORDER_OVERRIDES).bind(connection).bind(erp_id))
                            .await
                            .map_err(failed(format_args!("read the overrides of order {erp_id}")))?;
                        found.iter().map(|row| Ok((row.text("field")?, row.text("value")?))).collect()
                    })
                }

                fn list_exception_audit<'a>(&'a self, filter: ExceptionAuditFilter) -> BoxFuture<'a, Result<Vec<ExceptionAudit>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_EXCEPTION_ACTIONS)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.exception_id)
                                    .bind(filter.after_id)
                                    .bind(sql_limit(filter.limit)),
                            )
                            .await
                            .map_err(failed("list the exception audit log"))?;
                        rows::all(&found, rows::exception_audit)
                    })
                }

                fn get_shipment<'a>(&'a self, connection: &'a str, shipment_key: &'a str) -> BoxFuture<'a, Result<Option<ShipmentRecord>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_SHIPMENT).bind(connection).bind(shipment_key))
                            .await
                            .map_err(failed(format_args!("read shipment {shipment_key}")))?
                            .map(|row| rows::shipment(&row))
                            .transpose()
                    })
                }

                fn list_shipments<'a>(&'a self, filter: ShipmentFilter) -> BoxFuture<'a, Result<Vec<ShipmentRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_SHIPMENTS)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.erp_id.as_deref())
                                    .bind(filter.ss_order_id)
                                    .bind(filter.state.map(ShipmentState::as_str))
                                    .bind(filter.tracking_number.as_deref())
                                    .bind(filter.awaiting_scan)
                                    .bind(sql_limit(filter.limit))
                                    .bind(filter.kind.map(ShipmentKind::as_str))
                                    .bind(filter.voided)
                                    .bind(filter.after.as_ref().map(|c| millis(c.ss_created_at)))
                                    .bind(filter.after.as_ref().map(|c| c.connection.as_str()))
                                    .bind(filter.after.as_ref().map(|c| c.shipment_key.as_str())),
                            )
                            .await
                            .map_err(failed("list shipments"))?;
                        rows::all(&found, rows::shipment)
                    })
                }

                fn list_cost_entries<'a>(&'a self, filter: CostEntryFilter) -> BoxFuture<'a, Result<Vec<CostEntry>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                cost_filter!(query(sql::LIST_COST_ENTRIES), filter),
                            )
                            .await
                            .map_err(failed("list cost entries"))?;
                        rows::all(&found, rows::cost_entry)
                    })
                }

                fn get_cost_entry<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<CostEntry>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_COST_ENTRY).bind(id))
                            .await
                            .map_err(failed(format_args!("read cost entry {id}")))?
                            .map(|row| rows::cost_entry(&row))
                            .transpose()
                    })
                }

                fn get_cost_entry_by_key<'a>(&'a self, connection: &'a str, entry_key: &'a str) -> BoxFuture<'a, Result<Option<CostEntry>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_COST_ENTRY_BY_KEY).bind(connection).bind(entry_key))
                            .await
                            .map_err(failed(format_args!("read cost entry {entry_key}")))?
                            .map(|row| rows::cost_entry(&row))
                            .transpose()
                    })
                }

                fn list_cost_conversions<'a>(&'a self, filter: CostEntryFilter) -> BoxFuture<'a, Result<Vec<CostConversion>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                cost_filter!(query(sql::LIST_COST_CONVERSIONS), filter),
                            )
                            .await
                            .map_err(failed("list cost conversions"))?;
                        rows::all(&found, rows::cost_conversion)
                    })
                }

                fn get_cost_conversion<'a>(&'a self, connection: &'a str, entry_key: &'a str) -> BoxFuture<'a, Result<Option<CostConversion>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_COST_CONVERSION).bind(connection).bind(entry_key))
                            .await
                            .map_err(failed(format_args!("read the conversion of cost entry {entry_key}")))?
                            .map(|row| rows::cost_conversion(&row))
                            .transpose()
                    })
                }

                fn list_cost_batches<'a>(&'a self, filter: CostBatchFilter) -> BoxFuture<'a, Result<Vec<CostBatchRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_COST_BATCHES)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.state.map(BatchState::as_str))
                                    .bind(filter.from.map(date_text))
                                    .bind(filter.to.map(date_text))
                                    .bind(sql_limit(filter.limit))
                                    .bind(filter.id)
                                    .bind(filter.after.as_ref().map(|c| c.connection.as_str()))
                                    .bind(filter.after.as_ref().map(|c| date_text(c.window_start)))
                                    .bind(filter.after.as_ref().map(|c| i64::from(c.revision)))
                                    .bind(filter.after.as_ref().map(|c| c.id)),
                            )
                            .await
                            .map_err(failed("list cost batches"))?;
                        rows::all(&found, rows::cost_batch)
                    })
                }

                fn get_carrier_invoice<'a>(&'a self, connection: &'a str, carrier: &'a str, number: &'a str) -> BoxFuture<'a, Result<Option<CarrierInvoiceRecord>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_CARRIER_INVOICE).bind(connection).bind(carrier).bind(number))
                            .await
                            .map_err(failed(format_args!("read invoice {number} of {carrier}")))?
                            .map(|row| rows::carrier_invoice(&row))
                            .transpose()
                    })
                }

                fn list_carrier_invoices<'a>(&'a self, connection: Option<&'a str>) -> BoxFuture<'a, Result<Vec<CarrierInvoiceRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::LIST_CARRIER_INVOICES).bind(connection))
                            .await
                            .map_err(failed("list carrier invoices"))?;
                        rows::all(&found, rows::carrier_invoice)
                    })
                }

                fn list_invoice_charges<'a>(&'a self, filter: InvoiceChargeFilter) -> BoxFuture<'a, Result<Vec<InvoiceChargeRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(
                                query(sql::LIST_INVOICE_CHARGES)
                                    .bind(filter.connection.as_deref())
                                    .bind(filter.invoice_id)
                                    .bind(filter.shipment_key.as_deref())
                                    .bind(filter.tracking_number.as_deref())
                                    .bind(filter.unmatched),
                            )
                            .await
                            .map_err(failed("list invoice charges"))?;
                        rows::all(&found, rows::invoice_charge)
                    })
                }

                fn uninvoiced_labels<'a>(&'a self, connection: &'a str, carrier: &'a str, from: jiff::civil::Date, to: jiff::civil::Date) -> BoxFuture<'a, Result<Vec<ShipmentRecord>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::UNINVOICED_LABELS).bind(connection).bind(carrier).bind(date_text(from)).bind(date_text(to)))
                            .await
                            .map_err(failed(format_args!("list the {carrier} labels no invoice bills")))?;
                        rows::all(&found, rows::shipment)
                    })
                }

                fn get_cost_batch<'a>(&'a self, connection: &'a str, batch_key: &'a str) -> BoxFuture<'a, Result<Option<CostBatchRecord>>> {
                    Box::pin(async move {
                        self.reader()
                            .fetch_optional(query(sql::GET_COST_BATCH).bind(connection).bind(batch_key))
                            .await
                            .map_err(failed(format_args!("read cost batch {batch_key}")))?
                            .map(|row| rows::cost_batch(&row))
                            .transpose()
                    })
                }

                fn cost_batch_members<'a>(&'a self, connection: &'a str, batch_key: &'a str) -> BoxFuture<'a, Result<Vec<BatchMember>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::COST_BATCH_MEMBERS).bind(connection).bind(batch_key))
                            .await
                            .map_err(failed(format_args!("list the entries of cost batch {batch_key}")))?;
                        rows::all(&found, rows::batch_member)
                    })
                }

                fn unconverted_cost_entries<'a>(&'a self, connection: &'a str, after_id: Option<i64>, limit: u32) -> BoxFuture<'a, Result<Vec<CostEntry>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::UNCONVERTED_COST_ENTRIES).bind(connection).bind(after_id).bind(sql_limit(limit)))
                            .await
                            .map_err(failed("list cost entries waiting for conversion"))?;
                        rows::all(&found, rows::cost_entry)
                    })
                }

                fn scans_due<'a>(&'a self, connection: &'a str, now: Timestamp, limit: u32) -> BoxFuture<'a, Result<Vec<AwaitingScan>>> {
                    Box::pin(async move {
                        let found = self
                            .reader()
                            .fetch_all(query(sql::SCANS_DUE).bind(connection).bind(millis(now)).bind(sql_limit(limit)))
                            .await
                            .map_err(failed("list the labels due for a scan check"))?;
                        rows::all(&found, rows::awaiting_scan)
                    })
                }

                fn scans_awaiting<'a>(&'a self, connection: &'a str, tracking_numbers: &'a [String]) -> BoxFuture<'a, Result<Vec<AwaitingScan>>> {
                    Box::pin(async move {
                        let mut all = Vec::new();
                        for chunk in tracking_numbers.chunks(sql::SCANS_AWAITING_CHUNK) {
                            let text = sql::scans_awaiting(chunk.len());
                            let mut q = query(&text).bind(connection);
                            for number in chunk {
                                q = q.bind(number);
                            }
                            let found = self
                                .reader()
                                .fetch_all(q)
                                .await
                                .map_err(failed("find the labels awaiting a scan by tracking number"))?;
                            all.extend(rows::all(&found, rows::awaiting_scan)?);
                        }
                        if tracking_numbers.len() > sql::SCANS_AWAITING_CHUNK {
                            all.sort_by(|a, b| {
                                (&a.tracking_number, &a.shipment_key).cmp(&(&b.tracking_number, &b.shipment_key))
                            });
                        }
                        Ok(all)
                    })
                }

                fn mark_scans_checked<'a>(&'a self, connection: &'a str, checks: &'a [ScanCheck]) -> BoxFuture<'a, Result<()>> {
                    Box::pin(async move {
                        if checks.is_empty() {
                            return Ok(());
                        }
                        let mut tx = self.write().await?;
                        for check in checks {
                            query(sql::MARK_SCAN_CHECKED)
                                .bind(connection)
                                .bind(&check.shipment_key)
                                .bind(millis(check.checked_at))
                                .bind(millis(check.next_due_at))
                                .bind(check.coarse_status.as_deref())
                                .execute(&mut *tx)
                                .await
                                .map_err(failed(format_args!("record the scan check of {}", check.shipment_key)))?;
                        }
                        finish(tx).await
                    })
                }

                fn shipment_poll_can_find<'a>(
                    &'a self,
                    connection: &'a str,
                    orders_since: Timestamp,
                    labels_since: Timestamp,
                ) -> BoxFuture<'a, Result<bool>> {
                    Box::pin(async move {
                        let row = self
                            .reader()
                            .fetch_one(
                                query(sql::SHIPMENT_POLL_CAN_FIND)
                                    .bind(connection)
                                    .bind(millis(orders_since))
                                    .bind(millis(labels_since)),
                            )
                            .await
                            .map_err(failed("ask whether the shipment poll can find anything"))?;
                        Ok(rows::count(&row)? > 0)
                    })
                }

                fn count_labels_created<'a>(&'a self, connection: &'a str, from: Timestamp, to: Timestamp) -> BoxFuture<'a, Result<u64>> {
                    Box::pin(async move {
                        let row = self
                            .reader()
                            .fetch_one(query(sql::COUNT_LABELS_CREATED).bind(connection).bind(millis(from)).bind(millis(to)))
                            .await
                            .map_err(failed(format_args!("count the labels of {connection} created in a window")))?;
                        rows::count(&row)
                    })
                }

                fn rate_take<'a>(&'a self, key: &'a str, reserve: u32, now: Timestamp) -> BoxFuture<'a, Result<Option<Timestamp>>> {
                    Box::pin(self.take(key, reserve, now))
                }

                fn rate_take_counted<'a>(
                    &'a self,
                    key: &'a str,
                    limit: u32,
                    window: jiff::SignedDuration,
                    reserve: u32,
                    now: Timestamp,
                ) -> BoxFuture<'a, Result<Option<Timestamp>>> {
                    Box::pin(self.take_counted(key, limit, window, reserve, now))
                }

                fn rate_observe<'a>(
                    &'a self,
                    key: &'a str,
                    limit: u32,
                    remaining: u32,
                    reset_at: Timestamp,
                    now: Timestamp,
                ) -> BoxFuture<'a, Result<()>> {
                    Box::pin(self.observe(key, limit, remaining, reset_at, now))
                }
            }
        }
    };
}

pub(crate) use store_impl;
