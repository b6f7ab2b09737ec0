//! A batch of inbox-only changes (what webhook deliveries are: jobs planned, events
//! appended) written on the SQLite writer in one hop.
//!
//! Through sqlx every statement, and every row a statement returns, is a message to
//! the connection's worker thread and a wake-up back: for a group-committed batch of
//! webhook deliveries those hand-offs, not SQLite, were most of the time. Here the
//! writer's raw handle is taken from sqlx once ([`sqlx::sqlite::SqliteConnection::lock_handle`]
//! parks the worker thread until the handle is given back) and the whole batch runs
//! in a row on the store's inbox writer thread (which keeps the handle for a turn of
//! batches that follow each other closely, `crate::sqlite`'s `inbox_thread`): `BEGIN IMMEDIATE`, one prepared single-row
//! `INSERT` per job and per event, `COMMIT`.
//!
//! It keeps every rule of the generic path (`insert_inbox` in `crate::backend`):
//! - **Same rows.** The same columns and values, payloads and details as the JSON
//!   text sqlx would have bound.
//! - **Same outcomes.** A job is `INSERT ... ON CONFLICT DO NOTHING`, one at a time
//!   in the batch's order: the first change to plan a key gets the job (its id is the
//!   inserted row's), every later one in the batch and every key stored before is
//!   skipped.
//! - **All or nothing, and durable.** One transaction on the writer connection, so
//!   `synchronous=FULL` makes the `COMMIT` fsync before [`write`] returns; any error
//!   rolls the whole batch back, and so does a panic (the [`Open`] guard), so the
//!   writer is never left inside a transaction.
//!
//! Only this module touches the raw handle, through the small safe wrappers below;
//! every pointer it uses lives no longer than the [`LockedSqliteHandle`] it came from.

use std::ffi::{CStr, CString, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use jiff::Timestamp;
use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;

use crate::rows::millis;
use crate::{Change, CommitOutcome, Result, StoreError};

const INSERT_JOB: &str = "INSERT INTO jobs (connection, kind, idempotency_key, payload, state, attempts, next_run_at, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6, ?6) ON CONFLICT (connection, idempotency_key) DO NOTHING";
const INSERT_EVENT: &str = "INSERT INTO events (connection, record_type, record_id, kind, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// One change's rows, ready to bind: JSON already text, times already milliseconds.
struct Rows {
    connection: String,
    now: i64,
    jobs: Vec<JobRow>,
    events: Vec<EventRow>,
}

struct JobRow {
    kind: &'static str,
    key: String,
    payload: String,
    run_at: i64,
}

struct EventRow {
    record_type: &'static str,
    record_id: String,
    kind: &'static str,
    detail: String,
}

/// A batch prepared for [`write`]: built before the writer is taken, so the
/// serialising happens outside the write lock, and owned, so it can go to the
/// thread that writes it.
pub(super) struct Batch {
    changes: Vec<Rows>,
}

impl Batch {
    /// The rows of `changes`, each of which must be inbox-only (jobs and events, nothing else).
    pub(super) fn new(changes: &[Change]) -> Result<Batch> {
        let json = |v: &serde_json::Value| {
            serde_json::to_string(v).map_err(|e| StoreError::Database(format!("encode an inbox row's JSON: {e}")))
        };
        let mut rows = Vec::with_capacity(changes.len());
        for change in changes {
            let mut jobs = Vec::with_capacity(change.jobs.len());
            for job in &change.jobs {
                jobs.push(JobRow {
                    kind: job.spec.kind().as_str(),
                    key: job.idempotency_key.clone(),
                    payload: json(&job.spec.payload())?,
                    run_at: millis(job.run_at),
                });
            }
            let mut events = Vec::with_capacity(change.events.len());
            for event in &change.events {
                events.push(EventRow {
                    record_type: event.record_type.as_str(),
                    record_id: event.record_id.clone(),
                    kind: event.kind.as_str(),
                    detail: json(&event.detail)?,
                });
            }
            rows.push(Rows {
                connection: change.connection.clone(),
                now: millis(change.now.unwrap_or_else(Timestamp::now)),
                jobs,
                events,
            });
        }
        Ok(Batch { changes: rows })
    }

    fn job_count(&self) -> usize {
        self.changes.iter().map(|c| c.jobs.len()).sum()
    }
}

/// Write `batch` in one transaction on `handle` (blocking: the statements and the
/// `COMMIT`'s fsync run on this thread), with one outcome per change, in order.
pub(super) fn write(handle: &mut LockedSqliteHandle<'_>, batch: &Batch) -> Result<Vec<CommitOutcome>> {
    let db = Db { raw: handle.as_raw_handle(), _handle: PhantomData };
    if !db.autocommit() {
        // sqlx's own bookkeeping said no transaction (the caller checked), yet SQLite is
        // in one: nobody holds it (only a write holds the writer), so it goes.
        tracing::warn!("the SQLite writer was inside a transaction sqlx did not know of; rolling it back");
        db.exec(c"ROLLBACK", "roll back an abandoned write transaction")?;
    }
    let open = Open::begin(&db)?;
    let mut insert_job = db.prepare(INSERT_JOB, "prepare the inbox job insert")?;
    let mut insert_event = db.prepare(INSERT_EVENT, "prepare the inbox event insert")?;
    let plan = format!("plan {} inbox jobs", batch.job_count());
    let append = "append inbox events";
    let mut outcomes = Vec::with_capacity(batch.changes.len());
    for change in &batch.changes {
        let mut outcome = CommitOutcome::default();
        for job in &change.jobs {
            insert_job.bind_text(1, &change.connection, &plan)?;
            insert_job.bind_text(2, job.kind, &plan)?;
            insert_job.bind_text(3, &job.key, &plan)?;
            insert_job.bind_text(4, &job.payload, &plan)?;
            insert_job.bind_int(5, job.run_at, &plan)?;
            insert_job.bind_int(6, change.now, &plan)?;
            insert_job.run(&plan)?;
            if db.changes() == 1 {
                outcome.jobs_planned.push(db.last_insert_rowid());
            } else {
                outcome.jobs_skipped.push(job.key.clone());
            }
        }
        for event in &change.events {
            insert_event.bind_text(1, &change.connection, append)?;
            insert_event.bind_text(2, event.record_type, append)?;
            insert_event.bind_text(3, &event.record_id, append)?;
            insert_event.bind_text(4, event.kind, append)?;
            insert_event.bind_text(5, &event.detail, append)?;
            insert_event.bind_int(6, change.now, append)?;
            insert_event.run(append)?;
        }
        outcomes.push(outcome);
    }
    drop(insert_job);
    drop(insert_event);
    open.commit()?;
    Ok(outcomes)
}

/// The raw handle, for as long as the [`LockedSqliteHandle`] it came from is borrowed.
struct Db<'h> {
    raw: NonNull<ffi::sqlite3>,
    _handle: PhantomData<&'h mut ()>,
}

impl Db<'_> {
    /// An error of the last call on this handle, as the store reports it (a missing
    /// connection row says how to fix it, as [`crate::backend::failed`] does).
    fn error(&self, purpose: &str) -> StoreError {
        // SAFETY: the handle is open for as long as `self` lives; errmsg's text is
        // copied out before the next call on the handle.
        let (code, message) = unsafe {
            let code = ffi::sqlite3_extended_errcode(self.raw.as_ptr());
            let message = CStr::from_ptr(ffi::sqlite3_errmsg(self.raw.as_ptr())).to_string_lossy().into_owned();
            (code, message)
        };
        if code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY {
            StoreError::Database(format!(
                "{purpose}: the connection is not registered (call ensure_connection first): (code: {code}) {message}"
            ))
        } else {
            StoreError::Database(format!("{purpose}: (code: {code}) {message}"))
        }
    }

    fn exec(&self, sql: &CStr, purpose: &str) -> Result<()> {
        // SAFETY: an open handle and a NUL-terminated statement; no callback.
        let rc = unsafe { ffi::sqlite3_exec(self.raw.as_ptr(), sql.as_ptr(), None, ptr::null_mut(), ptr::null_mut()) };
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(self.error(purpose)) }
    }

    fn prepare(&self, sql: &str, purpose: &str) -> Result<Statement<'_>> {
        let text = CString::new(sql).map_err(|e| StoreError::Database(format!("{purpose}: {e}")))?;
        let mut raw = ptr::null_mut();
        // SAFETY: an open handle, a NUL-terminated statement; `raw` is finalized by
        // the returned Statement, which cannot outlive `self`.
        let rc = unsafe { ffi::sqlite3_prepare_v2(self.raw.as_ptr(), text.as_ptr(), -1, &mut raw, ptr::null_mut()) };
        match NonNull::new(raw) {
            Some(raw) if rc == ffi::SQLITE_OK => Ok(Statement { db: self, raw }),
            _ => Err(self.error(purpose)),
        }
    }

    /// Rows the last finished `INSERT` wrote.
    fn changes(&self) -> c_int {
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_changes(self.raw.as_ptr()) }
    }

    fn last_insert_rowid(&self) -> i64 {
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_last_insert_rowid(self.raw.as_ptr()) }
    }

    /// Whether no transaction is open.
    fn autocommit(&self) -> bool {
        // SAFETY: an open handle.
        unsafe { ffi::sqlite3_get_autocommit(self.raw.as_ptr()) != 0 }
    }
}

/// A prepared statement of a [`Db`], finalized when dropped.
struct Statement<'d> {
    db: &'d Db<'d>,
    raw: NonNull<ffi::sqlite3_stmt>,
}

impl Statement<'_> {
    fn check(&self, rc: c_int, purpose: &str) -> Result<()> {
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(self.db.error(purpose)) }
    }

    fn bind_text(&mut self, index: c_int, value: &str, purpose: &str) -> Result<()> {
        let len = c_int::try_from(value.len())
            .map_err(|_| StoreError::Database(format!("{purpose}: a value of {} bytes is too long", value.len())))?;
        // SAFETY: a live statement; SQLITE_TRANSIENT makes SQLite copy the bytes, so
        // `value` may go right after.
        let rc = unsafe { ffi::sqlite3_bind_text(self.raw.as_ptr(), index, value.as_ptr().cast(), len, ffi::SQLITE_TRANSIENT()) };
        self.check(rc, purpose)
    }

    fn bind_int(&mut self, index: c_int, value: i64, purpose: &str) -> Result<()> {
        // SAFETY: a live statement.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.raw.as_ptr(), index, value) };
        self.check(rc, purpose)
    }

    /// Run a statement that returns no row, then make it ready to bind and run again.
    fn run(&mut self, purpose: &str) -> Result<()> {
        // SAFETY: a live statement; reset after each step, whatever its result.
        let rc = unsafe { ffi::sqlite3_step(self.raw.as_ptr()) };
        let result = if rc == ffi::SQLITE_DONE { Ok(()) } else { Err(self.db.error(purpose)) };
        // SAFETY: a live statement. Reset repeats the step's error, which was taken above.
        unsafe { ffi::sqlite3_reset(self.raw.as_ptr()) };
        result
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized once, here; the handle is still open (it outlives `self`).
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

/// The batch's transaction: rolled back when dropped before [`Open::commit`] (an
/// error or a panic on the way), so the writer never stays inside it.
struct Open<'d> {
    db: &'d Db<'d>,
    done: bool,
}

impl<'d> Open<'d> {
    fn begin(db: &'d Db<'d>) -> Result<Open<'d>> {
        db.exec(c"BEGIN IMMEDIATE", "begin a write transaction")?;
        Ok(Open { db, done: false })
    }

    fn commit(mut self) -> Result<()> {
        self.db.exec(c"COMMIT", "commit the transaction")?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        // A COMMIT that failed may have ended the transaction already (SQLite rolls
        // back on some errors): roll back only what is still open.
        if !self.done && !self.db.autocommit() {
            let _ = self.db.exec(c"ROLLBACK", "roll back a batch of changes that failed");
        }
    }
}
