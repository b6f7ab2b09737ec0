//! PostgreSQL, for scale: several `shipledger serve` processes share one database.
//!
//! Writes are ordinary transactions; what makes sharing safe is in the SQL dialect:
//! workers claim jobs with `FOR UPDATE SKIP LOCKED` (each runnable job goes to exactly
//! one claimer, and nobody waits on another's batch), and the job a commit finishes
//! and the rate budget a request spends are locked with `FOR UPDATE` for the length
//! of their transaction. Migrations take PostgreSQL's advisory lock, so processes
//! starting together do not race them.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::backend::failed;
use crate::{Result, StoreError};

const MAX_CONNECTIONS: u32 = 10;

/// The PostgreSQL store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .finish()
    }
}

impl PostgresStore {
    /// Connect to `postgres://...` and run the migrations.
    pub async fn open(url: &str) -> Result<PostgresStore> {
        let open_error = |detail: String| StoreError::Open {
            url: redact(url),
            detail,
        };
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(format!("{}: {e}", redact(url))))?;
        Ok(PostgresStore { pool })
    }

    /// Close the pool (waits for connections in use to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    async fn write(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool
            .begin()
            .await
            .map_err(failed("begin a transaction"))
    }

    /// A batch of inbox-only changes: the generic multi-row statements, in one transaction.
    async fn commit_inbox(&self, changes: &[crate::Change]) -> Result<Vec<crate::CommitOutcome>> {
        store_impl::inbox_in_transaction(self, changes).await
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

crate::backend::store_impl!(PostgresStore, sqlx::Postgres, crate::sql::POSTGRES);

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_never_appears_in_messages() {
        assert_eq!(
            super::redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(super::redact("postgres://app@db/x"), "postgres://app@db/x");
    }
}
