//! What only SQLite has: files created on open, WAL with synchronous=FULL, and private
//! in-memory stores.

use shipledger_store::sqlite::SqliteStore;
use shipledger_store::{Change, OrderState, Store};
use sqlx::Connection;

use crate::harness::{order, t};

#[tokio::test]
async fn a_missing_database_file_is_created_in_wal_mode() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("new.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url).await?;
    store.ensure_connection("acme-uk", t(0)).await?;
    assert!(path.exists());

    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(mode, "wal");
    conn.close().await?;
    // Every commit is fsynced before it returns: it survives a power cut.
    assert_eq!(store.durability().await?, ("WAL".to_string(), "FULL".to_string()));

    // Reopening runs no migration twice and keeps the data.
    store.close().await;
    let again = SqliteStore::open(&url).await?;
    let mut change = Change::new("acme-uk", t(1));
    change.order = Some(order("1", "SO-1", OrderState::Held));
    again.commit(change).await?;
    Ok(())
}

#[tokio::test]
async fn an_in_memory_store_is_private_and_keeps_its_data() -> anyhow::Result<()> {
    let one = shipledger_store::open("sqlite::memory:").await?;
    let two = shipledger_store::open("sqlite::memory:").await?;
    one.ensure_connection("acme-uk", t(0)).await?;
    let mut change = Change::new("acme-uk", t(1));
    change.order = Some(order("1", "SO-1", OrderState::Held));
    one.commit(change.clone()).await?;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(one.get_order("acme-uk", "1").await?.is_some());
    // The other has its own database (no connection registered there).
    assert!(two.commit(change).await.is_err());
    assert_eq!(two.get_order("acme-uk", "1").await?, None);
    Ok(())
}

#[tokio::test]
async fn a_bad_url_says_which() {
    let err = shipledger_store::open("mysql://x")
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("mysql://x"), "{err}");
}
