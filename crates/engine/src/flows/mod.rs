//! The flows, one module each, named after what they do for the business:
//!
//! - [`release`]: ERP changes → release gate → a decision committed with its outbox job.
//! - [`recheck`]: held and released-unshipped orders read again on schedule → the
//!   same decision (released once fixed elsewhere, withdrawn once the ERP drops them).
//! - [`monitors`]: scans overdue, orders waiting too long for a label.
//! - [`shipments`]: ShipStation labels, voids, fulfillments and scans → ERP lines,
//!   and the write-backs they plan.
//! - [`costs`]: each label's charges → immutable cost-ledger entries in their own
//!   currency, planned with the label; voids reversed once.
//! - [`fx`]: cost entries → the ERP's base currency at the first usable rate of the
//!   configured sources, or waiting with a finance exception per pair and date.
//! - [`invoices`]: a carrier's invoice → its charges matched to labels by tracking
//!   number, adjustment entries to what it billed, variance and unmatched exceptions.
//! - [`journals`]: converted cost entries → one batch per posting window, its journal
//!   frozen and its posting planned in the outbox.
//! - [`reconcile`]: the ERP, our ledger and ShipStation compared per order key; every
//!   disagreement an owned exception, closed once it no longer holds.
//! - [`unknown_jobs`]: stored jobs of a kind this build does not know → an admin's
//!   exception per kind.
//!
//! And one handler per outbox job kind, registered in [`run_jobs`]:
//!
//! - [`push`]: `sync_order` → ShipStation `createorders` → read back.
//! - [`write_fulfilment`]: one shipment's phase → the ERP's fulfilment → read back.
//! - [`ingest_v1_webhook`]: a burst of v1 webhook hints → one incremental poll → ingested.
//! - [`ingest_v2_track`]: a v2 track webhook → the first scan recorded.
//! - [`journals`]: `post_journal` → the ERP's move, posted → read back.
//!
//! How a job ends (done, dead, or retried per its kind's policy) is
//! [`crate::jobs`]'s, for every handler.
pub mod costs;
pub mod fx;
pub mod ingest_v1_webhook;
pub mod ingest_v2_track;
pub mod invoices;
pub mod journals;
mod label_shares;
pub mod monitors;
pub mod push;
mod push_plan;
pub mod recheck;
pub mod reconcile;
pub mod release;
pub mod shipments;
#[cfg(test)]
mod test_support;
pub mod unknown_jobs;
pub mod write_fulfilment;

use shipledger_store::JobKind;

use crate::{Connection, Engine, EngineError};

/// What running one kind's jobs did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobsRun {
    pub push: push::PushReport,
    pub shipments: shipments::ShipmentReport,
    pub journals: journals::BatchReport,
}

/// Run every runnable job of `kind` on `conn` through its handler: the one place a
/// job kind finds its handler.
pub async fn run_jobs(engine: &Engine, conn: &Connection, kind: JobKind) -> Result<JobsRun, EngineError> {
    let mut run = JobsRun::default();
    match kind {
        JobKind::SyncOrder => run.push = push::run(engine, conn).await?,
        JobKind::WriteFulfilment => run.shipments = write_fulfilment::run(engine, conn).await?,
        JobKind::IngestV1Webhook => run.shipments = ingest_v1_webhook::run(engine, conn).await?,
        JobKind::IngestV2Track => run.shipments = ingest_v2_track::run(engine, conn).await?,
        JobKind::PostJournal => run.journals = journals::run(engine, conn).await?,
    }
    Ok(run)
}

/// One bounded step of `kind`'s jobs on `conn` (one claimed batch through its
/// handler's `step`): what it did, and whether any job was runnable. The lanes call
/// this; [`run_jobs`] is the same until none is left.
pub async fn run_jobs_step(engine: &Engine, conn: &Connection, kind: JobKind) -> Result<(JobsRun, bool), EngineError> {
    let mut run = JobsRun::default();
    let worked = match kind {
        JobKind::SyncOrder => push::step(engine, conn, &mut run.push).await?,
        JobKind::WriteFulfilment => write_fulfilment::step(engine, conn, &mut run.shipments).await?,
        JobKind::IngestV1Webhook => ingest_v1_webhook::step(engine, conn, &mut run.shipments).await?,
        JobKind::IngestV2Track => ingest_v2_track::step(engine, conn, &mut run.shipments).await?,
        JobKind::PostJournal => journals::step(engine, conn, &mut run.journals).await?,
    };
    Ok((run, worked))
}
