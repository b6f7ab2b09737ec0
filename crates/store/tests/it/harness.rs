//! Test databases and small builders. A [`TestDb`] is a fresh, migrated store with
//! the connections `acme-uk` and `beta-us` registered; it drops its database after.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use shipledger_store::{
    EventKind, IngestV1Webhook, IngestV2Track, JobClaim, JobKind, JobSpec, NewEvent, NewJob, OrderLineRecord, OrderState,
    OrderUpsert, Phase, Store, SyncOrder, WriteFulfilment,
};

pub const ACME: &str = "acme-uk";
pub const BETA: &str = "beta-us";

pub struct TestDb {
    pub store: Arc<dyn Store>,
    url: String,
    /// PostgreSQL: the server to drop the database on, and its name.
    drop_on: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> anyhow::Result<TestDb> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = shipledger_store::open(&url).await?;
        TestDb {
            store,
            url,
            drop_on: None,
            _dir: Some(dir),
        }
        .registered()
        .await
    }

    /// `None` (and a loud SKIPPED) without `TEST_DATABASE_URL`; a failure if `CI` is set.
    pub async fn postgres() -> anyhow::Result<Option<TestDb>> {
        let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
            if std::env::var_os("CI").is_some() {
                anyhow::bail!(
                    "CI is set but TEST_DATABASE_URL is not: the PostgreSQL store went untested"
                );
            }
            eprintln!(
                "SKIPPED: PostgreSQL story (set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run it)"
            );
            return Ok(None);
        };
        let name = format!("shipledger_test_{}", unique());
        admin(&server, &format!("CREATE DATABASE {name}")).await?;
        let url = with_database(&server, &name);
        let db = TestDb {
            store: shipledger_store::open(&url).await?,
            url,
            drop_on: Some((server, name)),
            _dir: None,
        };
        Ok(Some(db.registered().await?))
    }

    async fn registered(self) -> anyhow::Result<TestDb> {
        self.store.ensure_connection(ACME, t(0)).await?;
        self.store.ensure_connection(BETA, t(0)).await?;
        // Idempotent.
        self.store.ensure_connection(ACME, t(1)).await?;
        Ok(self)
    }

    /// Change the database by hand, as a person or another release might: one
    /// statement, on its own connection.
    pub async fn execute(&self, statement: &str) -> anyhow::Result<()> {
        use sqlx::Connection;
        if self.drop_on.is_some() {
            return admin(&self.url, statement).await;
        }
        let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
        sqlx::raw_sql(statement).execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// One text column of one row, read by hand (for rows the store will not read).
    pub async fn text(&self, statement: &str) -> anyhow::Result<Option<String>> {
        use sqlx::Connection;
        Ok(if self.drop_on.is_some() {
            let mut conn = sqlx::PgConnection::connect(&self.url).await?;
            let found: Option<(Option<String>,)> = sqlx::query_as(statement).fetch_optional(&mut conn).await?;
            conn.close().await?;
            found.and_then(|(text,)| text)
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
            let found: Option<(Option<String>,)> = sqlx::query_as(statement).fetch_optional(&mut conn).await?;
            conn.close().await?;
            found.and_then(|(text,)| text)
        })
    }

    /// A second store on the same database, as another process would open it.
    pub async fn open_another(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(shipledger_store::open(&self.url).await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.drop_on.take() else {
            return;
        };
        // Drop runs inside the test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

async fn admin(server: &str, statement: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server).await?;
    sqlx::raw_sql(statement).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// `postgres://u@h:p/db?x` with `db` replaced.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[host_start..].find('/') {
        Some(slash) => &base[..host_start + slash],
        None => base,
    };
    format!("{root}/{name}{query}")
}

fn unique() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fixed instant plus `secs` seconds: stories run on a clock they control.
pub fn t(secs: i64) -> Timestamp {
    let base: Timestamp = "2025-03-01T09:00:00Z".parse().unwrap();
    base + SignedDuration::from_secs(secs)
}

pub fn order(erp_id: &str, number: &str, state: OrderState) -> OrderUpsert {
    OrderUpsert {
        erp_id: erp_id.into(),
        number: number.into(),
        state,
        snapshot: json!({"id": erp_id, "lines": 1}),
        snapshot_hash: format!("hash-{erp_id}"),
        erp_updated_at: t(-60),
        order_key: format!("key-{erp_id}"),
        ss_order_id: None,
        ss_status: None,
        payment: None,
        pushed_hash: None,
        released_at: None,
        pushed_at: None,
        lines: None,
    }
}

pub fn line(line_id: &str, sku: &str, quantity: i64) -> OrderLineRecord {
    OrderLineRecord {
        connection: String::new(),
        erp_id: String::new(),
        line_id: line_id.into(),
        sku: Some(sku.into()),
        name: format!("{sku} widget"),
        quantity,
        unit_weight_mg: Some(250_000),
        unit_price_minor: 1299,
        currency: "GBP".into(),
        physical: true,
    }
}

/// A job of `kind` whose payload carries `key` (its idempotency key) where that kind
/// keeps an identifier, so a test can tell jobs apart by their spec.
pub fn spec(kind: JobKind, key: &str) -> JobSpec {
    match kind {
        JobKind::SyncOrder => SyncOrder { erp_id: key.into(), hash: key.into() }.into(),
        JobKind::WriteFulfilment => WriteFulfilment { shipment_key: key.into(), phase: Phase::Packed }.into(),
        JobKind::IngestV1Webhook => {
            IngestV1Webhook { resource_url: key.into(), resource_type: "SHIP_NOTIFY".into(), received_at: None }.into()
        }
        JobKind::IngestV2Track => IngestV2Track { body: json!({"key": key}) }.into(),
        JobKind::PostJournal => shipledger_store::PostJournal { batch_key: key.into() }.into(),
    }
}

pub fn job(kind: JobKind, key: &str, run_at: Timestamp) -> NewJob {
    NewJob::new(spec(kind, key), key, run_at)
}

/// An order's event of `kind` (the kind's text).
pub fn event(record_id: &str, kind: &str) -> NewEvent {
    NewEvent::order(record_id, EventKind::parse(kind).expect("an event kind"), json!({"why": kind}))
}

pub fn claim<'a>(kind: JobKind, now: Timestamp, worker: &'a str, limit: u32) -> JobClaim<'a> {
    JobClaim {
        kind,
        connection: None,
        now,
        lease: SignedDuration::from_secs(30),
        limit,
        worker,
    }
}
