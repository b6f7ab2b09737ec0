//! SQLite, the embedded default: one file in WAL mode (or a private in-memory
//! database for tests and demos).
//!
//! SQLite allows one writer at a time, so the store makes that explicit instead of
//! hoping `busy_timeout` papers over it: a writer pool of exactly one connection, on
//! which every write runs as `BEGIN IMMEDIATE` (taking the write lock up front, so a
//! transaction never has to upgrade a read lock and fail with `SQLITE_BUSY`), and a
//! separate pool of readers that WAL lets run alongside the writer. Another process
//! on the same file queues on `busy_timeout`. An in-memory database lives in one
//! connection, so there reader and writer are the same single-connection pool.
//!
//! A file database runs with `synchronous=FULL`: every commit fsyncs the WAL before
//! it returns, so what was committed (an acknowledged webhook, a finished job)
//! survives a power cut or an OS crash, not only the death of the process. A commit
//! costs one fsync, which is why the webhook receiver stores a burst of deliveries
//! in one transaction ([`Store::commit_batch`](crate::Store::commit_batch)).
//! [`SqliteStore::durability`] reports the setting as SQLite has it.
//!
//! Such a batch of deliveries (inbox-only changes) skips sqlx's per-statement
//! round trips to the connection's worker thread: it runs on the writer's raw handle
//! in one hop ([`inbox`]), the same transaction with the same rows and outcomes, on
//! a thread of its own that takes the writer once for a run of batches (at most
//! 10 ms, then every write waiting for the writer goes first).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::backend::failed;
use crate::{Change, CommitOutcome, Result, StoreError};

mod inbox;

/// How long a write waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent readers of a file database.
const READERS: u32 = 4;
/// `PRAGMA cache_size` of every connection to a file database: negative is KiB.
const CACHE_SIZE: &str = "-65536";

/// The SQLite store. Cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    /// The inbox writer thread's queue, started by the first inbox batch.
    inbox: std::sync::Arc<std::sync::OnceLock<std::sync::mpsc::Sender<InboxBatch>>>,
}

impl SqliteStore {
    /// Open `sqlite://path.db` (created when missing) or `sqlite::memory:` (a private
    /// database that lives as long as the store) and run the migrations.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        let open_error = |detail: String| StoreError::Open {
            url: url.to_string(),
            detail,
        };
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(|e| open_error(e.to_string()))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if !in_memory {
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                // 64 MiB of page cache per connection (SQLite's default is 2 MiB): the
                // jobs' and events' indexes are written in key order that is not
                // time order (idempotency keys are hashes), so a busy store outgrows
                // the default and every insert starts reading pages back.
                .pragma("cache_size", CACHE_SIZE);
        }

        // Never let the pool close its last connection: for an in-memory database
        // that would drop the data, for a file it only costs a reconnect.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // The one writer is a local file handle that never goes stale: no ping
            // (a round trip to its worker thread) before every write.
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(BUSY_TIMEOUT * 2)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_error(e.to_string()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Migrate(format!("{url}: {e}")))?;

        let readers = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .acquire_timeout(BUSY_TIMEOUT * 2)
                .connect_with(options)
                .await
                .map_err(|e| open_error(e.to_string()))?
        };
        Ok(SqliteStore { writer, readers, inbox: Default::default() })
    }

    /// Close both pools (waits for connections in use to come back).
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    /// What a commit survives, as SQLite reports it on the writer connection:
    /// `(journal_mode, synchronous)`, e.g. `("WAL", "FULL")` for a file (an
    /// in-memory database says `MEMORY` and keeps nothing past the process).
    pub async fn durability(&self) -> Result<(String, String)> {
        let (journal_mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&self.writer)
            .await
            .map_err(failed("read the journal mode"))?;
        let (synchronous,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&self.writer)
            .await
            .map_err(failed("read the synchronous setting"))?;
        let synchronous = match synchronous {
            0 => "OFF".to_string(),
            1 => "NORMAL".to_string(),
            2 => "FULL".to_string(),
            3 => "EXTRA".to_string(),
            n => format!("{n} (unknown)"),
        };
        Ok((journal_mode.to_ascii_uppercase(), synchronous))
    }

    fn reader(&self) -> &SqlitePool {
        &self.readers
    }

    /// A write transaction on the single writer, holding the write lock from the start.
    ///
    /// First the writer is made whole again if a cancelled write left it inside a
    /// transaction nobody holds: sqlx's SQLite `begin_with` runs the `BEGIN` and
    /// then awaits once more before it hands out the guard that would roll it back,
    /// so a write dropped at that moment (a client hanging up, a drain aborting a
    /// pass) leaves the one writer connection in a transaction, and every later
    /// write would fail with "non-zero transaction depth".
    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.heal_writer().await?;
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed("begin a write transaction"))
    }

    /// Roll back a transaction the writer was left in by a cancelled write (see
    /// [`SqliteStore::write`]). Only a write holds the writer, so an open
    /// transaction found here belongs to no one.
    async fn heal_writer(&self) -> Result<()> {
        take_writer(&self.writer).await.map(drop)
    }

    /// Store a batch of inbox-only changes (jobs planned, events appended) in one
    /// transaction on the writer's raw handle ([`inbox`]): the generic path's rows and
    /// outcomes without a round trip to sqlx's worker thread per statement.
    ///
    /// The batch goes to the store's inbox writer thread ([`inbox_thread`]), which
    /// takes the writer once for a run of batches that follow each other closely.
    /// The statements block (the `COMMIT`'s fsync, and a `BEGIN IMMEDIATE` may wait
    /// out `busy_timeout` for another process), so they never run on a runtime
    /// thread. Once handed over the batch always finishes, committed or rolled back,
    /// even when this call is dropped meanwhile: the writer comes back to the pool
    /// outside any transaction.
    async fn commit_inbox(&self, changes: &[Change]) -> Result<Vec<CommitOutcome>> {
        let batch = inbox::Batch::new(changes)?;
        let queue = self.inbox.get_or_init(|| {
            let (queue, batches) = std::sync::mpsc::channel();
            let (runtime, writer) = (tokio::runtime::Handle::current(), self.writer.clone());
            std::thread::Builder::new()
                .name("shipledger-inbox-writer".into())
                .spawn(move || inbox_thread(runtime, writer, batches))
                .expect("the operating system starts the inbox writer thread");
            queue
        });
        let (answer, answered) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Database("store a batch of inbox changes: the inbox writer thread has stopped".into());
        queue.send(InboxBatch { batch, answer }).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// A batch for the inbox writer thread, and where its outcome goes.
struct InboxBatch {
    batch: inbox::Batch,
    answer: tokio::sync::oneshot::Sender<Result<Vec<CommitOutcome>>>,
}

/// How long the inbox writer holds the writer for one run of batches, at most: a
/// write of the engine waiting for it waits no longer than this and one batch.
const INBOX_TURN: Duration = Duration::from_millis(10);
/// How long the inbox writer waits, holding the writer, for the next batch before it
/// gives the writer back: under load the next batch is on its way (the committer
/// answers the last one's deliveries and gathers what queued meanwhile).
const INBOX_LINGER: Duration = Duration::from_millis(1);

/// The inbox writer: batch after batch from `batches` until every sender is gone.
///
/// Taking the writer costs round trips to other threads each time (the pool's
/// acquire, which waits for the last user's release and its ping of the
/// connection's worker thread; [`sqlx::sqlite::SqliteConnection::lock_handle`], which
/// parks that worker). Under a burst those, not SQLite, were a third of each batch,
/// so the writer is taken once for a *turn*: the batches that arrive within
/// [`INBOX_LINGER`] of the last one's commit are written on the same handle, for at
/// most [`INBOX_TURN`]; then the writer goes back to the pool, where a write waiting
/// for it (the pool's queue is first come, first served) goes before the next turn.
///
/// A batch that panics is rolled back (`inbox`'s guard) and answered as an error; the
/// thread goes on.
fn inbox_thread(runtime: tokio::runtime::Handle, writer: SqlitePool, batches: std::sync::mpsc::Receiver<InboxBatch>) {
    // The pool's connection is given back by a task spawned on drop.
    let _runtime = runtime.enter();
    while let Ok(first) = batches.recv() {
        let mut conn = match runtime.block_on(take_writer(&writer)) {
            Ok(conn) => conn,
            Err(e) => {
                let _ = first.answer.send(Err(e));
                continue;
            }
        };
        // Taking the handle only waits for sqlx's worker thread to put it down.
        let mut handle = match runtime.block_on(conn.lock_handle()) {
            Ok(handle) => handle,
            Err(e) => {
                let _ = first.answer.send(Err(failed("take the writer's SQLite handle")(e)));
                continue;
            }
        };
        let turn = std::time::Instant::now();
        let mut next = Some(first);
        while let Some(InboxBatch { batch, answer }) = next.take() {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inbox::write(&mut handle, &batch)))
                .unwrap_or_else(|_| Err(StoreError::Database("store a batch of inbox changes: the write panicked; it was rolled back".into())));
            // A caller that stopped waiting is told nothing; what was stored stays.
            let _ = answer.send(outcome);
            if turn.elapsed() < INBOX_TURN {
                next = batches.recv_timeout(INBOX_LINGER).ok();
            }
        }
    }
}

/// The writer connection, made whole again if a cancelled write left it inside a
/// transaction ([`heal`]).
async fn take_writer(writer: &SqlitePool) -> Result<sqlx::pool::PoolConnection<Sqlite>> {
    let mut conn = writer.acquire().await.map_err(failed("take the writer connection"))?;
    heal(&mut conn).await?;
    Ok(conn)
}

/// Roll back the transaction sqlx says `conn` is in: see [`SqliteStore::write`].
async fn heal(conn: &mut sqlx::SqliteConnection) -> Result<()> {
    use sqlx::{Connection as _, TransactionManager as _};
    if conn.is_in_transaction() {
        tracing::warn!("the SQLite writer was left inside an abandoned transaction (a cancelled write); rolling it back");
        sqlx::sqlite::SqliteTransactionManager::rollback(conn)
            .await
            .map_err(failed("roll back an abandoned write transaction"))?;
    }
    Ok(())
}

crate::backend::store_impl!(SqliteStore, sqlx::Sqlite, crate::sql::SQLITE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store as _;
    use crate::{EventKind, IngestV1Webhook, NewEvent, NewJob, RecordType};

    async fn file_store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap()
    }

    /// A v1 delivery as the receiver builds it: one job, one `received` event.
    fn delivery(connection: &str, key: &str, at: i64) -> Change {
        let now = jiff::Timestamp::from_millisecond(at).unwrap();
        let mut change = Change::new(connection, now);
        let url = format!("https://ssapi.shipstation.com/shipments?batchId={key}");
        change.jobs.push(NewJob::new(
            IngestV1Webhook { resource_url: url.clone(), resource_type: "SHIP_NOTIFY".into(), received_at: Some(now) },
            key,
            now,
        ));
        change.events.push(NewEvent::new(
            RecordType::Webhook,
            "SHIP_NOTIFY",
            EventKind::Received,
            serde_json::json!({"resource_url": url, "idempotency_key": key}),
        ));
        change
    }

    type JobRow = (String, String, String, String, String, i64, i64, i64, i64);
    type EventRow = (String, String, String, String, String, i64);

    async fn rows(store: &SqliteStore) -> (Vec<JobRow>, Vec<EventRow>) {
        let jobs = sqlx::query_as(
            "SELECT connection, kind, idempotency_key, payload, state, attempts, next_run_at, created_at, updated_at FROM jobs ORDER BY id",
        )
        .fetch_all(&store.readers)
        .await
        .unwrap();
        let events = sqlx::query_as("SELECT connection, record_type, record_id, kind, detail, at FROM events ORDER BY id")
            .fetch_all(&store.readers)
            .await
            .unwrap();
        (jobs, events)
    }

    /// A burst of webhook batches holds the writer in turns, not for as long as the
    /// burst lasts: the engine's own writes (a job finished, a watermark moved) go
    /// through between turns while deliveries are still arriving, and every batch and
    /// every write is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_engine_still_writes_while_a_burst_of_webhooks_is_being_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(file_store(&dir).await);
        store.ensure_connection("acme", jiff::Timestamp::from_millisecond(1_000).unwrap()).await.unwrap();
        let engine_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let burst = {
            let (store, engine_done) = (store.clone(), engine_done.clone());
            tokio::spawn(async move {
                // Batch after batch, as the committer sends them under load, until
                // the engine's writes are all done.
                let mut batches = 0u64;
                while !engine_done.load(std::sync::atomic::Ordering::SeqCst) {
                    let batch: Vec<Change> = (0..16).map(|i| delivery("acme", &format!("v1hook:{batches}-{i}"), 2_000)).collect();
                    store.commit_batch(&batch).await.unwrap();
                    batches += 1;
                }
                batches
            })
        };
        // Let the burst take the writer first.
        let stored_now = async || store.count_jobs("acme").await.unwrap().iter().map(|(_, _, n)| n).sum::<u64>();
        while stored_now().await == 0 {
            tokio::task::yield_now().await;
        }
        let before = stored_now().await;
        let writes = tokio::time::timeout(Duration::from_secs(60), async {
            for n in 0..20 {
                let mut change = Change::new("acme", jiff::Timestamp::from_millisecond(3_000 + n).unwrap());
                let from = (n > 0).then(|| (n - 1).to_string());
                change.watermark = Some(crate::WatermarkMove::new("engine", from, n.to_string()));
                store.commit(change).await.unwrap();
            }
        })
        .await;
        let during = stored_now().await;
        engine_done.store(true, std::sync::atomic::Ordering::SeqCst);
        let batches = burst.await.unwrap();
        assert!(writes.is_ok(), "the engine's writes waited out the whole burst");
        assert_eq!(store.get_watermark("acme", "engine").await.unwrap().as_deref(), Some("19"));
        assert_eq!(stored_now().await, batches * 16, "every delivery of the burst is stored");
        assert!(during > before, "deliveries were stored between the engine's writes ({before} before them, {during} after)");
    }

    /// The raw-handle batch writes, byte for byte, the rows that committing each
    /// delivery on its own (sqlx, the generic path) writes, with the same outcomes: a
    /// key planned earlier in the batch or stored before is skipped, the first one
    /// planned gets its row's id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_on_the_raw_handle_writes_the_rows_and_outcomes_of_one_commit_each() {
        let (raw_dir, one_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (raw, one) = (file_store(&raw_dir).await, file_store(&one_dir).await);
        let now = jiff::Timestamp::from_millisecond(1_000).unwrap();
        for store in [&raw, &one] {
            store.ensure_connection("acme", now).await.unwrap();
            store.ensure_connection("beta", now).await.unwrap();
            store.commit(delivery("acme", "v1hook:earlier", 1_000)).await.unwrap();
        }
        let batch = vec![
            delivery("acme", "v1hook:a", 2_000),
            delivery("acme", "v1hook:earlier", 2_000),
            delivery("acme", "v1hook:b", 2_001),
            delivery("acme", "v1hook:a", 2_002),
            delivery("beta", "v1hook:a", 2_003),
        ];
        let batched = raw.commit_batch(&batch).await.unwrap();
        let mut each = Vec::new();
        for change in &batch {
            each.push(one.commit(change.clone()).await.unwrap());
        }
        assert_eq!(batched, each, "the same outcomes, ids included");
        let skipped: Vec<&[String]> = batched.iter().map(|o| o.jobs_skipped.as_slice()).collect();
        assert_eq!(skipped, [&[][..], &["v1hook:earlier".to_string()], &[], &["v1hook:a".to_string()], &[]]);
        let (jobs, events) = rows(&raw).await;
        assert_eq!((jobs.len(), events.len()), (4, 6));
        assert_eq!((jobs, events), rows(&one).await, "the same rows");
        // The planned ids are the rows' ids.
        let ids: Vec<(i64,)> = sqlx::query_as("SELECT id FROM jobs WHERE idempotency_key = 'v1hook:b'").fetch_all(&raw.readers).await.unwrap();
        assert_eq!(batched[2].jobs_planned, [ids[0].0]);
    }

    /// A batch that fails part-way (its fourth delivery names a connection never
    /// registered) writes nothing, says how to fix it, and leaves the writer outside
    /// any transaction: the next batch and the next ordinary write go through.
    #[tokio::test]
    async fn a_batch_failing_on_the_raw_handle_writes_nothing_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        store.ensure_connection("acme", jiff::Timestamp::now()).await.unwrap();
        let batch: Vec<Change> = ["v1hook:a", "v1hook:b", "v1hook:c"]
            .iter()
            .map(|k| delivery("acme", k, 1_000))
            .chain([delivery("nobody", "v1hook:x", 1_000), delivery("acme", "v1hook:d", 1_000)])
            .collect();
        let err = store.commit_batch(&batch).await.expect_err("an unregistered connection");
        assert!(err.to_string().contains("ensure_connection"), "{err}");
        assert_eq!(rows(&store).await, (vec![], vec![]), "nothing of the failed batch is kept");
        {
            use sqlx::Connection as _;
            assert!(!store.writer.acquire().await.unwrap().is_in_transaction());
        }
        let outcomes = store.commit_batch(&batch[..3]).await.expect("the next batch");
        assert!(outcomes.iter().all(|o| o.jobs_planned.len() == 1));
        store.ensure_connection("nobody", jiff::Timestamp::now()).await.expect("and an ordinary write");
        assert_eq!(rows(&store).await.0.len(), 3);
    }

    /// An in-memory store (one connection for reading and writing) takes the same path.
    #[tokio::test]
    async fn an_in_memory_store_stores_a_batch_on_the_raw_handle() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.ensure_connection("acme", jiff::Timestamp::now()).await.unwrap();
        let batch = [delivery("acme", "v1hook:a", 1_000), delivery("acme", "v1hook:a", 1_001)];
        let outcomes = store.commit_batch(&batch).await.unwrap();
        assert_eq!((outcomes[0].jobs_planned.len(), outcomes[1].jobs_skipped.len()), (1, 1));
        let (jobs, events) = rows(&store).await;
        assert_eq!((jobs.len(), events.len()), (1, 2));
    }

    /// A write cancelled between its `BEGIN` and sqlx's transaction guard leaves the
    /// writer inside a transaction; the next write still goes through, and what the
    /// abandoned one had written is not kept.
    #[tokio::test]
    async fn a_write_cancelled_after_its_begin_does_not_wedge_the_store() {
        use sqlx::TransactionManager as _;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap();
        let now = jiff::Timestamp::now();
        {
            // What the cancelled write leaves behind: a BEGIN with no guard.
            let mut conn = store.writer.acquire().await.unwrap();
            sqlx::sqlite::SqliteTransactionManager::begin(&mut conn, Some("BEGIN IMMEDIATE".into())).await.unwrap();
            sqlx::query("INSERT INTO connections (name, created_at) VALUES ('abandoned', 0)").execute(&mut *conn).await.unwrap();
        }
        store.ensure_connection("acme", now).await.expect("a write after the abandoned one");
        store.ensure_connection("acme-2", now).await.expect("and the one after it");
        let names: Vec<(String,)> = sqlx::query_as("SELECT name FROM connections ORDER BY name").fetch_all(&store.readers).await.unwrap();
        assert_eq!(names, vec![("acme".to_string(),), ("acme-2".to_string(),)]);
    }
}
