//! The flows, one module each, named after what they do for the business:
//!
//! - [`release`]: ERP changes → release gate → a decision committed with its outbox job.
//! - [`recheck`]: held and released-unshipped orders read again on schedule → the
//!   same decision (released once fixed elsewhere, withdrawn once the ERP drops them).
//! - [`monitors`]: scans overdue, orders waiting too long for a label.
//! - [`push`]: outbox `sync_order` jobs → ShipStation `createorders` → read back.
//! - [`shipments`]: ShipStation labels, voids, fulfillments and scans → ERP lines,
//!   written back packed then completed.
mod label_shares;
pub mod monitors;
pub mod push;
mod push_plan;
pub mod recheck;
pub mod release;
pub mod shipments;
#[cfg(test)]
mod test_support;

use jiff::{SignedDuration, Timestamp};
use shipledger_store::{Change, Job, StoreError};

use crate::{Engine, EngineError};

/// How long a claimed job is ours before another worker may take it over (a worker
/// that died delays its jobs this long; one that is merely slow may see its jobs
/// redone by another, which idempotency keys make harmless).
pub(crate) const LEASE: SignedDuration = SignedDuration::from_secs(30);

/// Commit a change that finishes a job; a lease lost to another worker means that
/// worker redoes the job (idempotently), so it is not an error here.
pub(crate) async fn commit_job_change(engine: &Engine, change: Change) -> Result<(), EngineError> {
    match engine.store.commit(change).await {
        Ok(_) | Err(StoreError::LeaseLost { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Put a job back for another attempt at `at`, recording why (a lost lease is fine).
pub(crate) async fn retry_job(engine: &Engine, job: &Job, at: Timestamp, error: &str) -> Result<(), EngineError> {
    let token = job.lease_token.clone().unwrap_or_default();
    match engine.store.retry_job(job.id, &token, at, error, engine.clock.now()).await {
        Ok(()) | Err(StoreError::LeaseLost { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
