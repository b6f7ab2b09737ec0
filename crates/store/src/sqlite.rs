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

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::backend::failed;
use crate::{Result, StoreError};

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
        Ok(SqliteStore { writer, readers })
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
        use sqlx::{Connection as _, TransactionManager as _};
        let mut conn = self.writer.acquire().await.map_err(failed("take the writer connection"))?;
        if conn.is_in_transaction() {
            tracing::warn!("the SQLite writer was left inside an abandoned transaction (a cancelled write); rolling it back");
            sqlx::sqlite::SqliteTransactionManager::rollback(&mut conn)
                .await
                .map_err(failed("roll back an abandoned write transaction"))?;
        }
        Ok(())
    }
}

crate::backend::store_impl!(SqliteStore, sqlx::Sqlite, crate::sql::SQLITE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store as _;

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
