//! The store: shipledger's durable state behind one [`Store`] trait, with a SQLite
//! (embedded default, WAL) and a PostgreSQL (scale) implementation, each with its own
//! `migrations/`. It never calls an external system and decides nothing; the engine
//! decides and the store makes each decision durable **atomically**.
//!
//! The central idea is the [`Change`]: everything one decision touches — the order
//! row and its lines, the jobs it plans (the transactional outbox), the events of the
//! timeline, exceptions opened or closed, a watermark, the job that finished — is
//! committed in one database transaction by [`Store::commit`]. A crash leaves either
//! all of it or none of it, so "planned in the same transaction as the state change"
//! holds by construction.
//!
//! Shipments seen in ShipStation (labels and fulfillments, one record however often
//! they are seen) are written by the same [`Change`] as the decisions about them.
//!
//! Cost-ledger entries ([`NewCostEntry`]) are written by the same [`Change`] as the
//! label they come from, insert-or-ignore by their key; none is ever updated or
//! deleted (the migrations' triggers refuse it too).
//!
//! Every table carries the connection (one ERP plus one ShipStation account), so one
//! deployment serves many brands.
//!
//! Jobs are claimed with a lease ([`Store::claim_jobs`]): `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL so several processes share the work, a single writer on SQLite. A job
//! whose lease expired (its worker died) is claimable again. The job's idempotency key
//! is unique per connection: planning the same external write twice is a no-op.
//!
//! The ShipStation rate budget lives here too ([`Store::rate_take`],
//! [`Store::rate_observe`]), so every worker of every process spends one budget per
//! API key.

#[macro_use]
mod names;
mod backend;
pub mod event;
pub mod job;
pub mod model;
pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use jiff::Timestamp;

pub use model::*;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {detail}")]
    Open { url: String, detail: String },
    #[error("the store's migrations failed: {0}")]
    Migrate(String),
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("the lease on job {job_id} was lost (another worker took it over); the work will be redone idempotently")]
    LeaseLost { job_id: i64 },
    #[error(
        "the lease on the {name} pass of connection {connection} was lost (its lease ran out and another worker took it over, \
         or it was released); that worker's pass counts"
    )]
    ScheduleLeaseLost { connection: String, name: String },
    #[error(
        "watermark {name} moved while this worker worked from it (read {expected:?}, stored {found:?}): another worker advanced it; \
         nothing of this change was written, read it again and carry on"
    )]
    WatermarkMoved { name: String, expected: Option<String>, found: Option<String> },
    #[error(
        "cost entry {entry_key} of connection {connection} was recorded by another worker with other contents while this \
         worker planned it; nothing of this change was written, read the ledger again and plan anew"
    )]
    CostEntryMoved { connection: String, entry_key: String },
    #[error(
        "cost entry {entry_key} of connection {connection} was converted by another worker first; nothing of this change was \
         written, and that worker's conversion counts"
    )]
    CostAlreadyConverted { connection: String, entry_key: String },
    #[error(
        "cost batch {batch_key} of connection {connection} was planned or moved by another worker while this worker \
         worked from it ({detail}); nothing of this change was written, read the batches again and plan anew"
    )]
    CostBatchMoved { connection: String, batch_key: String, detail: String },
    #[error(
        "invoice {number} of carrier {carrier} was imported into connection {connection} before, from {file_name} on {imported_at}, \
         with other charges than this file gives it; an imported invoice is never changed: nothing of this file was imported. \
         A carrier bills corrections on a new invoice; import that one"
    )]
    InvoiceAlreadyImported { connection: String, carrier: String, number: String, file_name: String, imported_at: String },
    #[error(
        "invoice charge {charge_id} of connection {connection} was matched to a label by another import while this one worked; \
         nothing of this change was written, import the file again"
    )]
    InvoiceMoved { connection: String, charge_id: i64 },
    #[error("a live API token is already named {name:?}: revoke it first or choose another name")]
    TokenNameTaken { name: String },
    #[error("{why}")]
    ActionRefused { exception_id: i64, action: String, why: String },
    #[error("store query failed: {0}")]
    Database(String),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error(
        "job {job_id} has kind {kind:?}, which this version of shipledger does not know: it is not run. \
         Run the shipledger version that planned it, or mark it dead once its work is done another way"
    )]
    UnknownJobKind { job_id: i64, kind: String },
    #[error("job {job_id} ({kind}) has a payload this version cannot read ({detail}); it is not run")]
    BadJob { job_id: i64, kind: String, detail: String },
}

impl shipledger_core::retry::Classify for StoreError {
    /// A failed query (a dropped connection, a serialization conflict, a busy
    /// database) and a lost lease: backoff (the work is redone idempotently). Data
    /// that cannot be read, a store that cannot open or migrate: an admin must act.
    /// A watermark another worker moved, a schedule's lease another worker took
    /// over: backoff too (read again and carry on). A missing record: ops.
    fn classify(&self) -> shipledger_core::retry::Verdict {
        use shipledger_core::exception::Owner;
        use shipledger_core::retry::Verdict;
        match self {
            StoreError::Database(_)
            | StoreError::LeaseLost { .. }
            | StoreError::ScheduleLeaseLost { .. }
            | StoreError::WatermarkMoved { .. }
            | StoreError::CostEntryMoved { .. }
            | StoreError::CostAlreadyConverted { .. }
            | StoreError::CostBatchMoved { .. }
            | StoreError::InvoiceMoved { .. } => Verdict::Backoff,
            StoreError::Open { .. }
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_)
            | StoreError::UnknownJobKind { .. }
            | StoreError::BadJob { .. } => Verdict::GiveUp { owner: Owner::Admin },
            StoreError::NotFound { .. } | StoreError::ActionRefused { .. } | StoreError::TokenNameTaken { .. } => Verdict::GiveUp { owner: Owner::Ops },
            StoreError::InvoiceAlreadyImported { .. } => Verdict::GiveUp { owner: Owner::Finance },
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// shipledger's durable state. Implementations: [`sqlite::SqliteStore`] and
/// [`postgres::PostgresStore`]; [`open`] picks one from a URL.
pub trait Store: Send + Sync {
    /// Make sure a connection row exists (idempotent).
    fn ensure_connection<'a>(&'a self, name: &'a str, now: Timestamp) -> BoxFuture<'a, Result<()>>;

    /// Commit one decision atomically. Jobs whose idempotency key already exists on
    /// the connection are skipped (reported in the outcome), never duplicated.
    fn commit<'a>(&'a self, change: Change) -> BoxFuture<'a, Result<CommitOutcome>>;

    /// Commit many independent decisions in **one** transaction, in order: every
    /// one of them or none (the first that fails rolls the whole batch back and is
    /// the error). One outcome per change, in the same order. Idempotency keys hold
    /// across the batch as across commits: a job whose key an earlier change of the
    /// same batch planned is skipped. This is group commit: the webhook receiver
    /// stores a burst of deliveries with one `BEGIN ... COMMIT` (one fsync) instead
    /// of one each.
    ///
    /// Both backends implement it in one transaction. There is no default: a store
    /// that wraps another must forward it, or a batch would no longer be all or
    /// nothing (nor fast).
    fn commit_batch<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<Vec<CommitOutcome>>>;

    // ---- orders

    fn get_order<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Option<OrderRecord>>>;
    /// Find the order behind a ShipStation order key.
    fn get_order_by_key<'a>(&'a self, connection: &'a str, order_key: &'a str) -> BoxFuture<'a, Result<Option<OrderRecord>>>;
    fn list_orders<'a>(&'a self, filter: OrderFilter) -> BoxFuture<'a, Result<Vec<OrderRecord>>>;
    fn order_lines<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Vec<OrderLineRecord>>>;
    /// Orders per state on a connection.
    fn count_orders_by_state<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<(OrderState, u64)>>>;

    // ---- jobs (the outbox)

    /// Lease up to `limit` runnable jobs of `kind` (pending with `next_run_at <= now`,
    /// or running with an expired lease) on `connection` (all when `None`), oldest
    /// first. Each claimed job gets a fresh `lease_token`, `lease_until = now + lease`,
    /// `state = running` and `attempts + 1`. A claimed row whose payload cannot be
    /// read is finished `dead` in the same transaction, with a `last_error` that says
    /// why ([`job::unreadable_payload_error`]), and is not returned.
    fn claim_jobs<'a>(&'a self, claim: JobClaim<'a>) -> BoxFuture<'a, Result<Vec<Job>>>;
    /// Put a job back for a later attempt (keeps the payload, records the error).
    /// With [`Attempt::NotCounted`] its `attempts` go back down by the one its claim
    /// added (a wait the other side named is not an attempt). Fails with `LeaseLost`
    /// when the token no longer matches.
    fn retry_job<'a>(
        &'a self,
        job_id: i64,
        lease_token: &'a str,
        next_run_at: Timestamp,
        error: &'a str,
        attempt: Attempt,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;
    fn get_job<'a>(&'a self, job_id: i64) -> BoxFuture<'a, Result<Option<Job>>>;
    fn list_jobs<'a>(&'a self, filter: JobFilter) -> BoxFuture<'a, Result<Vec<Job>>>;
    /// Jobs per (kind, state) on a connection; the kind as stored, so jobs of a kind
    /// this build does not know are counted too.
    fn count_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<(String, JobState, u64)>>>;
    /// Pending and running jobs on a connection whose kind this build does not know,
    /// per kind (a grouped count, then the oldest ids of each unknown kind).
    fn unknown_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<UnknownJobs>>>;
    /// Dead jobs on a connection that a claim finished because their payload could
    /// not be read ([`job::unreadable_payload_error`]), per kind: how many, and the
    /// oldest ids.
    fn unreadable_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<UnknownJobs>>>;

    /// How many jobs of `kind` on `connection` a claim at `now` would take (pending
    /// with `next_run_at <= now`, or running with an expired lease), and the earliest
    /// and latest `created_at` among them: one grouped query, nothing claimed.
    fn runnable_jobs<'a>(&'a self, connection: &'a str, kind: JobKind, now: Timestamp) -> BoxFuture<'a, Result<RunnableJobs>>;

    /// Pending and running jobs per (connection, kind, state), with the earliest
    /// `next_run_at` of each group: one grouped query, for the metrics' job gauges.
    fn job_stats<'a>(&'a self) -> BoxFuture<'a, Result<Vec<JobStats>>>;

    /// Keep the jobs of one claim leased: every job still running under `lease_token`
    /// (one claim's jobs share its token) has its lease run until `lease_until`, in
    /// one statement. Returns the ids still held; a claimed job missing from them was
    /// finished, or its lease ran out and another worker took it over.
    fn renew_jobs<'a>(&'a self, lease_token: &'a str, lease_until: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<Vec<i64>>>;

    /// Give back at once every job and recurring-pass lease `worker` holds (what a
    /// draining worker does before it exits): its running jobs go back to pending,
    /// runnable at once, *keeping* the attempt their claim counted (a cut-short step
    /// may already have made its external write, so the next claim is a retry and
    /// reads back first); its passes keep their due time, so the next worker to look
    /// takes them. Leases are found by the
    /// worker's name at the head of their token ([`JobClaim::worker`],
    /// [`ScheduleTake::worker`]); other workers' leases are untouched.
    fn release_leases<'a>(&'a self, worker: &'a str, now: Timestamp) -> BoxFuture<'a, Result<ReleasedLeases>>;

    // ---- recurring passes (schedules)

    /// Take the recurring pass `take.name` on `take.connection`, leased to
    /// `take.worker` for `take.lease`, atomically: the row is made when missing (due
    /// now), then leased only when it is due (`next_due_at <= now`, or never run) or
    /// `take.force`, and no live lease holds it (an expired one is taken over).
    /// `Ok(None)` when it is not due or another worker holds it. The record returned
    /// carries the new `lease_token` and `last_started_at = now`.
    fn take_schedule<'a>(&'a self, take: ScheduleTake<'a>) -> BoxFuture<'a, Result<Option<ScheduleRecord>>>;
    /// Give a pass back with the token its take returned: the lease is cleared,
    /// `next_due_at` set, `runs + 1`, and either `last_success_at` becomes the pass's
    /// start (no error) or `last_error` records why it failed. Fails with
    /// [`StoreError::ScheduleLeaseLost`] when the token no longer holds the pass.
    fn finish_schedule<'a>(&'a self, finish: ScheduleFinish<'a>) -> BoxFuture<'a, Result<()>>;
    /// Keep a pass taken: its lease runs until `lease_until` (a worker still at work
    /// renews it, so a lease can be short and a dead worker's pass is taken over
    /// soon). `Ok(false)` when the token no longer holds the pass.
    fn renew_schedule<'a>(&'a self, connection: &'a str, name: &'a str, lease_token: &'a str, lease_until: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<bool>>;
    /// Mark a pass as having worked from `at` without running it (the later of this
    /// and the stored last success stays), keeping its due time and lease.
    fn record_schedule_success<'a>(&'a self, connection: &'a str, name: &'a str, at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>>;
    /// Bring a pass forward: due no later than `at` (a pass never run stays due now).
    fn hasten_schedule<'a>(&'a self, connection: &'a str, name: &'a str, at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>>;
    /// One pass's record (`None`: never taken, due now).
    fn get_schedule<'a>(&'a self, connection: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ScheduleRecord>>>;
    /// Every pass's record, of one connection or all, by connection and name.
    fn list_schedules<'a>(&'a self, connection: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ScheduleRecord>>>;

    // ---- watermarks

    /// A watermark's stored value. A [`Change`] moves it only from the value its
    /// writer read ([`WatermarkMove`]).
    fn get_watermark<'a>(&'a self, connection: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    // ---- the event log

    fn timeline<'a>(&'a self, connection: &'a str, record_type: &'a str, record_id: &'a str) -> BoxFuture<'a, Result<Vec<EventRecord>>>;
    /// The whole story of an order: its own events and those of every shipment mapped
    /// to it (labels, voids, scans, ERP write-backs), merged by time, each shipment
    /// event with its tracking number.
    fn order_timeline<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Vec<TimelineEntry>>>;

    // ---- exceptions

    fn list_exceptions<'a>(&'a self, filter: ExceptionFilter) -> BoxFuture<'a, Result<Vec<ExceptionRecord>>>;
    fn get_exception<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<ExceptionRecord>>>;
    /// Live exceptions (open or acknowledged) per (connection, kind): one grouped
    /// query, for seeding the metrics' open-exception gauges.
    fn count_open_exceptions<'a>(&'a self) -> BoxFuture<'a, Result<Vec<OpenExceptions>>>;
    /// A person's action on an exception (acknowledge, assign, retry, resolve,
    /// ignore), checked by [`ExceptionAction::check`] against the exception as it is
    /// in the transaction, with its audit row and a timeline event on its record in
    /// the same transaction. A retry re-arms the job behind it there too. Refused
    /// ([`StoreError::ActionRefused`], nothing written) when the exception has moved
    /// on or the action does not apply; [`StoreError::NotFound`] for an unknown id.
    fn act_on_exception<'a>(&'a self, act: ExceptionAct) -> BoxFuture<'a, Result<ExceptionActed>>;
    /// The audit log: every action on exceptions, a person's or shipledger's, oldest first.
    fn list_exception_audit<'a>(&'a self, filter: ExceptionAuditFilter) -> BoxFuture<'a, Result<Vec<ExceptionAudit>>>;

    /// The ShipStation-side fields an operator set on one order (edit and retry,
    /// [`ExceptionAction::Edit`]), by field; every push of the order carries them.
    fn order_overrides<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<std::collections::BTreeMap<String, String>>>;

    // ---- API tokens (only their hashes)

    /// Record a new token; [`StoreError::TokenNameTaken`] when a live one has its name.
    fn create_api_token<'a>(&'a self, token: NewApiToken, now: Timestamp) -> BoxFuture<'a, Result<ApiTokenRecord>>;
    /// Every token, revoked ones too, oldest first.
    fn list_api_tokens<'a>(&'a self) -> BoxFuture<'a, Result<Vec<ApiTokenRecord>>>;
    /// The live (not revoked) token with this hash.
    fn api_token_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<ApiTokenRecord>>>;
    /// Revoke a live token; [`StoreError::NotFound`] when there is no live one with this id.
    fn revoke_api_token<'a>(&'a self, id: i64, now: Timestamp) -> BoxFuture<'a, Result<ApiTokenRecord>>;
    /// Note that a token was used (at most once a minute is written).
    fn touch_api_token<'a>(&'a self, id: i64, now: Timestamp) -> BoxFuture<'a, Result<()>>;

    // ---- the reconciler's copies of ShipStation and the ERP, and its runs

    /// Insert or replace ShipStation orders in the reconciler's copy, in one transaction.
    fn stage_ss_orders<'a>(&'a self, connection: &'a str, orders: &'a [StagedSsOrder]) -> BoxFuture<'a, Result<()>>;
    /// Note that ShipStation merged `absorbed` into `into` (a stub row for an order the
    /// copy does not hold: ShipStation hides merged orders).
    fn stage_ss_merges<'a>(&'a self, connection: &'a str, into: i64, absorbed: &'a [i64], modified_at: Timestamp) -> BoxFuture<'a, Result<()>>;
    /// Insert or replace ShipStation labels in the copy, in one transaction.
    fn stage_ss_shipments<'a>(&'a self, connection: &'a str, shipments: &'a [StagedSsShipment]) -> BoxFuture<'a, Result<()>>;
    /// Insert or replace ERP orders in the copy, in one transaction.
    fn stage_erp_orders<'a>(&'a self, connection: &'a str, orders: &'a [StagedErpOrder]) -> BoxFuture<'a, Result<()>>;
    /// Move split children under their parent's key, merged-away orders under their
    /// ledger order's key, and labels under their order's key.
    fn resolve_recon_keys<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<ResolvedKeys>>;
    /// The copy's ShipStation orders by (`root_key`, id) as bytes, after `after`.
    fn page_ss_orders<'a>(&'a self, connection: &'a str, after: Option<(&'a str, i64)>, limit: u32) -> BoxFuture<'a, Result<Vec<StagedSsOrder>>>;
    /// The copy's labels by (`root_key`, id) as bytes, after `after`.
    fn page_ss_shipments<'a>(&'a self, connection: &'a str, after: Option<(&'a str, i64)>, limit: u32) -> BoxFuture<'a, Result<Vec<StagedSsShipment>>>;
    /// The copy's ERP orders by `order_key` as bytes, after `after`.
    fn page_erp_orders<'a>(&'a self, connection: &'a str, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<StagedErpOrder>>>;
    /// Our ledger's orders as the reconciler sees them, `(order_key, side)` by key as
    /// bytes, after `after`.
    fn page_ledger_orders<'a>(&'a self, connection: &'a str, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<(String, shipledger_core::reconcile::LedgerSide)>>>;
    fn start_reconcile_run<'a>(&'a self, connection: &'a str, mode: ReconcileMode, since: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<ReconcileRun>>;
    fn finish_reconcile_run<'a>(&'a self, id: i64, state: ReconcileState, stats: serde_json::Value, error: Option<String>, now: Timestamp) -> BoxFuture<'a, Result<ReconcileRun>>;
    /// Mark `connection`'s runs still `running` as failed with `why` (their worker
    /// stopped before they finished); how many there were.
    fn abandon_reconcile_runs<'a>(&'a self, connection: &'a str, why: &'a str, now: Timestamp) -> BoxFuture<'a, Result<u64>>;
    fn get_reconcile_run<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<ReconcileRun>>>;
    fn list_reconcile_runs<'a>(&'a self, filter: ReconcileRunFilter) -> BoxFuture<'a, Result<Vec<ReconcileRun>>>;
    /// Record a run's findings, in one transaction.
    fn add_reconcile_findings<'a>(&'a self, run_id: i64, connection: &'a str, findings: &'a [shipledger_core::reconcile::Finding]) -> BoxFuture<'a, Result<()>>;
    /// Findings in id order, each with the exception it opened or refreshed
    /// ([`ReconcileFindingRecord::exception_id`]).
    fn list_reconcile_findings<'a>(&'a self, filter: ReconcileFindingFilter) -> BoxFuture<'a, Result<Vec<ReconcileFindingRecord>>>;

    // ---- shipments (labels and fulfillments seen in ShipStation)

    fn get_shipment<'a>(&'a self, connection: &'a str, shipment_key: &'a str) -> BoxFuture<'a, Result<Option<ShipmentRecord>>>;
    /// Shipments matching the filter, oldest `ss_created_at` first, then by connection
    /// and key (the order [`ShipmentFilter::after`] pages in).
    fn list_shipments<'a>(&'a self, filter: ShipmentFilter) -> BoxFuture<'a, Result<Vec<ShipmentRecord>>>;

    // ---- the cost ledger (immutable entries; written only by [`Store::commit`])

    /// Cost entries matching the filter, by label time then id (the order a cursor
    /// pages in). There is no method to change or delete one: an entry is corrected
    /// by another entry.
    fn list_cost_entries<'a>(&'a self, filter: CostEntryFilter) -> BoxFuture<'a, Result<Vec<CostEntry>>>;
    /// One cost entry by its id.
    fn get_cost_entry<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<CostEntry>>>;
    /// One cost entry by its key on a connection (`label:8001/postage/0`).
    fn get_cost_entry_by_key<'a>(&'a self, connection: &'a str, entry_key: &'a str) -> BoxFuture<'a, Result<Option<CostEntry>>>;
    /// The conversions of the entries `filter` lists (those converted), in the same
    /// order. Written only by [`Store::commit`]; never changed or deleted.
    fn list_cost_conversions<'a>(&'a self, filter: CostEntryFilter) -> BoxFuture<'a, Result<Vec<CostConversion>>>;
    /// One entry's conversion, by the entry's key (`None`: waiting for a rate).
    fn get_cost_conversion<'a>(&'a self, connection: &'a str, entry_key: &'a str) -> BoxFuture<'a, Result<Option<CostConversion>>>;
    /// Entries of `connection` with no conversion yet, by id, after `after_id`, at
    /// most `limit` (0: all): the converter's pages.
    fn unconverted_cost_entries<'a>(&'a self, connection: &'a str, after_id: Option<i64>, limit: u32) -> BoxFuture<'a, Result<Vec<CostEntry>>>;

    // ---- cost batches (journals planned from the ledger; written only by [`Store::commit`])

    /// Batches matching the filter, by connection, window and revision, then id (the
    /// order [`CostBatchFilter::after`] pages in).
    /// The invoice `number` of `carrier` imported into `connection`, if any.
    fn get_carrier_invoice<'a>(&'a self, connection: &'a str, carrier: &'a str, number: &'a str) -> BoxFuture<'a, Result<Option<CarrierInvoiceRecord>>>;
    /// The carrier invoices imported into `connection` (every one when `None`), by id.
    fn list_carrier_invoices<'a>(&'a self, connection: Option<&'a str>) -> BoxFuture<'a, Result<Vec<CarrierInvoiceRecord>>>;
    /// Imported invoice charges, by id.
    fn list_invoice_charges<'a>(&'a self, filter: InvoiceChargeFilter) -> BoxFuture<'a, Result<Vec<InvoiceChargeRecord>>>;
    /// The live labels of `carrier` shipped `from`..=`to` (ship date) that no imported
    /// invoice charge is matched to, by ship date and key.
    fn uninvoiced_labels<'a>(&'a self, connection: &'a str, carrier: &'a str, from: jiff::civil::Date, to: jiff::civil::Date) -> BoxFuture<'a, Result<Vec<ShipmentRecord>>>;
    fn list_cost_batches<'a>(&'a self, filter: CostBatchFilter) -> BoxFuture<'a, Result<Vec<CostBatchRecord>>>;
    /// One batch by its key on a connection.
    fn get_cost_batch<'a>(&'a self, connection: &'a str, batch_key: &'a str) -> BoxFuture<'a, Result<Option<CostBatchRecord>>>;
    /// The entries a batch holds (or held, when withdrawn), by entry key.
    fn cost_batch_members<'a>(&'a self, connection: &'a str, batch_key: &'a str) -> BoxFuture<'a, Result<Vec<BatchMember>>>;

    // ---- the scan sweep (labels awaiting their first carrier scan)
    //
    // A label the sweep can check is live (`kind = label`, not voided), has no
    // `first_scan_at`, is mapped to an ERP order and has a tracking number. Its check
    // state ([`ScanCheckState`]) is written only by [`Store::mark_scans_checked`];
    // [`Store::commit`] never changes it.

    /// Up to `limit` (0: all) checkable labels on `connection` that are due at `now`
    /// (never checked, or `next_due_at <= now`), least recently checked first: never
    /// checked ones first, then by `last_checked_at`, ties by oldest `ss_created_at`
    /// and then `shipment_key`. A merged label (one tracking number, several ERP
    /// orders) is one row per order.
    fn scans_due<'a>(&'a self, connection: &'a str, now: Timestamp, limit: u32) -> BoxFuture<'a, Result<Vec<AwaitingScan>>>;
    /// The checkable labels on `connection` whose tracking number is one of
    /// `tracking_numbers` (any number of them; unknown ones find nothing), due or
    /// not, ordered by tracking number and then `shipment_key`.
    fn scans_awaiting<'a>(&'a self, connection: &'a str, tracking_numbers: &'a [String]) -> BoxFuture<'a, Result<Vec<AwaitingScan>>>;
    /// Record checks that found no physical scan, in one transaction: per
    /// `shipment_key` on `connection`, `last_checked_at = checked_at`, `next_due_at`
    /// as given, `empty_checks + 1`, and the coarse status when one is given (else
    /// the stored one stays). Keys of no shipment are ignored. Nothing else of the
    /// shipment changes (not its `updated_at`).
    fn mark_scans_checked<'a>(&'a self, connection: &'a str, checks: &'a [ScanCheck]) -> BoxFuture<'a, Result<()>>;

    // ---- what the shipment poll can find

    /// Whether ShipStation can hold anything new for the shipment poll of
    /// `connection`: an order shipledger put there that awaits shipment (`pushed`:
    /// it may be labelled, marked shipped elsewhere, split or merged at any moment),
    /// an order that was in ShipStation (`ss_order_id` known) whose record changed at
    /// or after `orders_since` (cancelled or shipped lately: a label made just before
    /// may not be polled yet), or a live label created at or after `labels_since`
    /// (still voidable). `false` means a poll now can only find orders created in
    /// ShipStation by hand, which the reconciler names. No default: a wrapper that
    /// answered `true` would make every poll run; one that answered `false`, none.
    fn shipment_poll_can_find<'a>(
        &'a self,
        connection: &'a str,
        orders_since: Timestamp,
        labels_since: Timestamp,
    ) -> BoxFuture<'a, Result<bool>>;

    /// How many ShipStation labels (distinct shipment ids, voided ones included) the
    /// store holds on `connection` created from `from` to `to`, both inclusive: what
    /// the shipment poll compares with ShipStation's count of the window it would
    /// read again. No default: a wrapper must forward it.
    fn count_labels_created<'a>(&'a self, connection: &'a str, from: Timestamp, to: Timestamp) -> BoxFuture<'a, Result<u64>>;

    // ---- the shared ShipStation rate budget

    /// Take one request from the budget of `key` at `now`: `Ok(None)` to go ahead,
    /// `Ok(Some(t))` to wait until `t`. Atomic across processes. A key with no known
    /// window (never observed, or its reset has passed) is granted.
    fn rate_take<'a>(&'a self, key: &'a str, reserve: u32, now: Timestamp) -> BoxFuture<'a, Result<Option<Timestamp>>>;
    /// Take one request from the budget of `key`, whose limit is known and not told
    /// by the server (ShipStation v2 sends no `X-Rate-Limit-*` headers, only
    /// `Retry-After` on a 429): `limit` requests per `window`, counted here. A key with
    /// no running window starts one at `now` (`limit - 1` left until `now + window`);
    /// within a window each take spends one while more than `reserve` are left,
    /// otherwise it says when the window resets. A 429 recorded by [`Store::rate_observe`]
    /// (`remaining = 0` until the server's reset) makes every taker wait for it.
    /// Atomic across processes: one budget per key however many workers share it.
    fn rate_take_counted<'a>(
        &'a self,
        key: &'a str,
        limit: u32,
        window: jiff::SignedDuration,
        reserve: u32,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Option<Timestamp>>>;
    /// Record what ShipStation's headers said: `remaining` requests until `reset_at`.
    /// A 429 is `remaining = 0`.
    fn rate_observe<'a>(&'a self, key: &'a str, limit: u32, remaining: u32, reset_at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>>;
}

/// Open the store named by `url` (`sqlite://path.db`, `sqlite::memory:`,
/// `postgres://...`) and run its migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PostgresStore::open(url).await?))
    } else {
        Err(StoreError::Open {
            url: url.to_string(),
            detail: "the URL must start with sqlite: or postgres://".into(),
        })
    }
}
