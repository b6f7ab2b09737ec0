//! The records the store keeps and the [`Change`] that writes them.
//!
//! Times are `jiff::Timestamp` here and i64 epoch milliseconds in the database.
//! Snapshots, payloads and details are JSON.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shipledger_core::exception::{ExceptionKind, Owner, Severity};

pub use crate::event::{EventKind, RecordType};
pub use crate::job::*;
pub use shipledger_core::cost::{CostEntry, NewCostEntry};

string_enum! {
    /// Where an order stands in shipledger.
    OrderState {
        /// Seen, not yet judged (transient).
        Received => "received",
        /// Failed the release gate; open exceptions say why.
        Held => "held",
        /// Passed the gate; a push job is planned.
        Released => "released",
        /// In ShipStation (its `orderId` recorded and read back).
        Pushed => "pushed",
        /// Cancelled in the ERP (and in ShipStation if it had been pushed).
        Cancelled => "cancelled",
        /// Shipped in ShipStation (from issue 4 on).
        Shipped => "shipped",
    }
}

string_enum! {
    JobState {
        Pending => "pending",
        Running => "running",
        Done => "done",
        /// Gave up after its attempts; an exception says so.
        Dead => "dead",
    }
}

string_enum! {
    ExceptionState {
        Open => "open",
        /// A person has seen it and is on it; it is still live (raised again, it is
        /// refreshed; its condition clearing still closes it).
        Acknowledged => "acknowledged",
        /// The condition cleared by itself (e.g. the ERP record was fixed).
        Closed => "closed",
        /// A person said it is dealt with.
        Resolved => "resolved",
        /// A person said to leave it.
        Ignored => "ignored",
    }
}

impl ExceptionState {
    /// A state filter as people write it: `live` (open or acknowledged), `all`, or one
    /// state; the [`ExceptionFilter`] `state` and `live` it means.
    pub fn filter(text: &str) -> Option<(Option<ExceptionState>, bool)> {
        match text {
            "live" => Some((None, true)),
            "all" => Some((None, false)),
            one => ExceptionState::parse(one).map(|state| (Some(state), false)),
        }
    }

    /// Open or acknowledged: somebody still has to act, the condition still holds.
    pub fn is_live(self) -> bool {
        matches!(self, ExceptionState::Open | ExceptionState::Acknowledged)
    }
}

string_enum! {
    /// What an API token may do: viewers read, operators also act on exceptions
    /// (and what they lead to), admins also manage tokens. Ordered by power.
    TokenRole {
        Viewer => "viewer",
        Operator => "operator",
        Admin => "admin",
    }
}

impl TokenRole {
    /// Whether a token of this role may do what `needed` may.
    pub fn allows(self, needed: TokenRole) -> bool {
        self >= needed
    }
}

/// The connections an API token may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenScope {
    /// Every connection, present and future (stored as `["*"]`).
    All,
    Only(std::collections::BTreeSet<String>),
}

impl TokenScope {
    pub fn allows(&self, connection: &str) -> bool {
        match self {
            TokenScope::All => true,
            TokenScope::Only(names) => names.contains(connection),
        }
    }

    /// As stored: `["*"]` or the names.
    pub fn to_json(&self) -> Value {
        match self {
            TokenScope::All => serde_json::json!(["*"]),
            TokenScope::Only(names) => serde_json::json!(names),
        }
    }

    pub fn from_json(value: &Value) -> Option<TokenScope> {
        let names: Vec<String> = serde_json::from_value(value.clone()).ok()?;
        if names.iter().any(|n| n == "*") {
            Some(TokenScope::All)
        } else {
            Some(TokenScope::Only(names.into_iter().collect()))
        }
    }
}

/// A token to record ([`crate::Store::create_api_token`]): only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    /// Unique among live tokens: who or what holds it (`dashboard`, `ana`).
    pub name: String,
    pub role: TokenRole,
    pub scope: TokenScope,
    /// The SHA-256 of the token, hex.
    pub hash: String,
    /// The token's first characters, to tell tokens apart in lists.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: i64,
    pub name: String,
    pub role: TokenRole,
    pub scope: TokenScope,
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

/// An order as shipledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub connection: String,
    pub erp_id: String,
    pub number: String,
    pub state: OrderState,
    /// The last ERP snapshot (a serialized `shipledger_core::order::ErpOrder`).
    pub snapshot: Value,
    /// Hash of the snapshot's shipping-relevant content, to see real changes.
    pub snapshot_hash: String,
    pub erp_updated_at: Timestamp,
    /// The deterministic ShipStation `orderKey`.
    pub order_key: String,
    pub ss_order_id: Option<i64>,
    /// The ShipStation status we last wrote or read (`awaiting_shipment`, ...).
    pub ss_status: Option<String>,
    /// The payment evidence recorded at release (a serialized `PaymentEvidence`).
    pub payment: Option<Value>,
    /// The snapshot hash last pushed to ShipStation.
    pub pushed_hash: Option<String>,
    pub released_at: Option<Timestamp>,
    pub pushed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One order line, as last snapshotted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLineRecord {
    pub connection: String,
    pub erp_id: String,
    pub line_id: String,
    pub sku: Option<String>,
    pub name: String,
    pub quantity: i64,
    /// Per-unit weight in milligrams, when known.
    pub unit_weight_mg: Option<i64>,
    pub unit_price_minor: i64,
    pub currency: String,
    pub physical: bool,
}

/// Write (insert or replace) an order and, when given, replace its lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderUpsert {
    pub erp_id: String,
    pub number: String,
    pub state: OrderState,
    pub snapshot: Value,
    pub snapshot_hash: String,
    pub erp_updated_at: Timestamp,
    pub order_key: String,
    pub ss_order_id: Option<i64>,
    pub ss_status: Option<String>,
    pub payment: Option<Value>,
    pub pushed_hash: Option<String>,
    pub released_at: Option<Timestamp>,
    pub pushed_at: Option<Timestamp>,
    /// `Some` replaces every line of the order; `None` leaves them.
    pub lines: Option<Vec<OrderLineRecord>>,
}

impl OrderUpsert {
    /// The upsert that writes `record` back unchanged (edit fields, then commit).
    pub fn from_record(record: &OrderRecord) -> OrderUpsert {
        OrderUpsert {
            erp_id: record.erp_id.clone(),
            number: record.number.clone(),
            state: record.state,
            snapshot: record.snapshot.clone(),
            snapshot_hash: record.snapshot_hash.clone(),
            erp_updated_at: record.erp_updated_at,
            order_key: record.order_key.clone(),
            ss_order_id: record.ss_order_id,
            ss_status: record.ss_status.clone(),
            payment: record.payment.clone(),
            pushed_hash: record.pushed_hash.clone(),
            released_at: record.released_at,
            pushed_at: record.pushed_at,
            lines: None,
        }
    }
}

/// A job to plan: an external write with its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// What to do: the kind and its payload.
    pub spec: JobSpec,
    /// Unique per connection; a second job with the same key is not planned.
    pub idempotency_key: String,
    pub run_at: Timestamp,
}

impl NewJob {
    pub fn new(spec: impl Into<JobSpec>, idempotency_key: impl Into<String>, run_at: Timestamp) -> NewJob {
        NewJob { spec: spec.into(), idempotency_key: idempotency_key.into(), run_at }
    }
}

/// A job as the store keeps it. Reading a row of a kind this build does not know is
/// [`StoreError::UnknownJobKind`](crate::StoreError::UnknownJobKind), never a guess.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub connection: String,
    pub spec: JobSpec,
    pub idempotency_key: String,
    pub state: JobState,
    pub attempts: i64,
    pub next_run_at: Timestamp,
    pub lease_until: Option<Timestamp>,
    pub lease_token: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Job {
    pub fn kind(&self) -> JobKind {
        self.spec.kind()
    }
}

/// What to claim.
#[derive(Debug, Clone)]
pub struct JobClaim<'a> {
    pub kind: JobKind,
    pub connection: Option<&'a str>,
    pub now: Timestamp,
    pub lease: jiff::SignedDuration,
    pub limit: u32,
    /// Identifies the claiming worker in the lease token (for logs).
    pub worker: &'a str,
}

/// How a job the change finishes ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFinish {
    pub job_id: i64,
    /// The claim's token; a mismatch fails the whole commit with `LeaseLost`.
    pub lease_token: String,
    /// `Done` or `Dead`.
    pub state: JobState,
    pub error: Option<String>,
}

/// An event for the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub record_type: RecordType,
    pub record_id: String,
    pub kind: EventKind,
    pub detail: Value,
}

impl NewEvent {
    pub fn new(record_type: RecordType, record_id: impl Into<String>, kind: EventKind, detail: Value) -> NewEvent {
        NewEvent { record_type, record_id: record_id.into(), kind, detail }
    }

    /// An event of an order (by ERP id).
    pub fn order(erp_id: impl Into<String>, kind: EventKind, detail: Value) -> NewEvent {
        NewEvent::new(RecordType::Order, erp_id, kind, detail)
    }

    /// An event of a shipment (by shipment key).
    pub fn shipment(shipment_key: impl Into<String>, kind: EventKind, detail: Value) -> NewEvent {
        NewEvent::new(RecordType::Shipment, shipment_key, kind, detail)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: i64,
    pub connection: String,
    pub record_type: RecordType,
    pub record_id: String,
    pub kind: EventKind,
    pub detail: Value,
    pub at: Timestamp,
}

/// One row of an order's timeline ([`crate::Store::order_timeline`]): an event of the
/// order or of one of its shipments, with that shipment's tracking number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    #[serde(flatten)]
    pub event: EventRecord,
    /// The tracking number of the shipment the event belongs to (`None` for the
    /// order's own events and for shipments without one).
    pub tracking_number: Option<String>,
}

/// Open an exception, or refresh it (`last_seen`, `detail`, `occurrences + 1`) when
/// one of the same kind is already open on the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionOpen {
    pub kind: ExceptionKind,
    pub record_type: String,
    pub record_id: String,
    /// `{"message": ..., "fields": [...], ...}`
    pub detail: Value,
    /// The job given up behind it (set by the engine when it finishes a job dead
    /// with this change), which `exceptions retry` re-arms.
    #[serde(default)]
    pub job_id: Option<i64>,
}

/// Close the open exception of `kind` on a record (the condition cleared).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionClose {
    pub kind: ExceptionKind,
    pub record_type: String,
    pub record_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionRecord {
    pub id: i64,
    pub connection: String,
    pub kind: ExceptionKind,
    pub owner: Owner,
    pub severity: Severity,
    pub record_type: String,
    pub record_id: String,
    pub state: ExceptionState,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub occurrences: i64,
    pub detail: Value,
    /// The note of the last person who changed its state.
    pub note: Option<String>,
    /// Who is working on it (a person's or a team's name), if anyone.
    pub assignee: Option<String>,
    /// The job given up behind it, which a retry re-arms.
    pub job_id: Option<i64>,
    pub acknowledged_at: Option<Timestamp>,
    /// When it was closed, resolved or ignored.
    pub ended_at: Option<Timestamp>,
}

impl ExceptionRecord {
    /// How long it has been (or was) live: from first seen to its end, or to `now`.
    pub fn age(&self, now: Timestamp) -> jiff::SignedDuration {
        self.ended_at.unwrap_or(now).duration_since(self.first_seen)
    }
}

/// What a person (or a program acting for one) does to an exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ExceptionAction {
    /// "I have seen it and am on it": open → acknowledged.
    Acknowledge,
    /// Give it to someone (`None`: to nobody). Its state stays.
    Assign { to: Option<String> },
    /// Run the job behind it again: a given-up job is re-armed (attempts from
    /// zero, due now), a job waiting for its next attempt is made due now. The
    /// exception stays live; it closes when the job succeeds.
    Retry,
    /// Edit and retry: correct ShipStation-side fields shipledger owns on the order
    /// behind it (`set`: field → value, `None` removes an override; the fields are
    /// [`shipledger_core::overrides::FIELDS`]), then run its job again. Every later
    /// push of the order carries them. The ERP's business data (weights, addresses,
    /// lines) is never edited here: it is corrected in the ERP.
    Edit { set: std::collections::BTreeMap<String, Option<String>> },
    /// "It is dealt with" (a note saying how is required).
    Resolve,
    /// "Leave it be" (a note saying why is required): while ignored, the same kind
    /// is not raised again on the record.
    Ignore,
}

impl ExceptionAction {
    /// The stable name (`acknowledge`, `assign`, ...), in the audit log and the API.
    pub fn name(&self) -> &'static str {
        match self {
            ExceptionAction::Acknowledge => "acknowledge",
            ExceptionAction::Assign { .. } => "assign",
            ExceptionAction::Retry => "retry",
            ExceptionAction::Edit { .. } => "edit",
            ExceptionAction::Resolve => "resolve",
            ExceptionAction::Ignore => "ignore",
        }
    }

    /// Whether this action may be taken on `exception` with `note`; the refusal
    /// says why and what to do instead. The store checks it again in its
    /// transaction (the exception may have moved meanwhile).
    pub fn check(&self, exception: &ExceptionRecord, note: Option<&str>) -> Result<(), String> {
        let id = exception.id;
        let needs_note = matches!(self, ExceptionAction::Resolve | ExceptionAction::Ignore);
        if needs_note && note.is_none_or(|n| n.trim().is_empty()) {
            return Err(format!("to {} exception {id}, give a note saying why (it is kept in its audit log)", self.name()));
        }
        if !exception.state.is_live() {
            return Err(format!(
                "exception {id} is {} already{}; nothing to {}",
                exception.state,
                exception.ended_at.map(|t| format!(" (since {t})")).unwrap_or_default(),
                self.name()
            ));
        }
        match self {
            ExceptionAction::Acknowledge if exception.state == ExceptionState::Acknowledged => {
                Err(format!("exception {id} is acknowledged already"))
            }
            ExceptionAction::Assign { to: Some(to) } if to.trim().is_empty() => {
                Err(format!("name whom to assign exception {id} to (or unassign it)"))
            }
            ExceptionAction::Retry | ExceptionAction::Edit { .. } if exception.job_id.is_none() => Err(format!(
                "exception {id} ({}) has no job behind it to retry: shipledger checks its condition again by itself and closes it once it clears; fix the cause it names",
                exception.kind
            )),
            ExceptionAction::Edit { .. } if exception.record_type != "order" => Err(format!(
                "exception {id} ({}) is about a {}, not an order: only an order's ShipStation fields can be edited here",
                exception.kind, exception.record_type
            )),
            ExceptionAction::Edit { set } if set.is_empty() => Err(format!("say what to edit on exception {id}'s order (a field and its value)")),
            ExceptionAction::Edit { set } => {
                set.iter().try_for_each(|(field, value)| shipledger_core::overrides::check(field, value.as_deref())).map_err(|why| format!("exception {id}: {why}"))
            }
            _ => Ok(()),
        }
    }
}

/// One action on an exception ([`crate::Store::act_on_exception`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionAct {
    pub id: i64,
    pub action: ExceptionAction,
    /// Who: a token's name, `cli:USER`, ... (kept in the audit log).
    pub actor: String,
    pub note: Option<String>,
    pub at: Timestamp,
}

/// What an action did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionActed {
    /// The exception after the action.
    pub exception: ExceptionRecord,
    /// Its audit row.
    pub audit: ExceptionAudit,
}

/// One row of an exception's audit log: who did what, when, and the exception's
/// fields (and for a retry, its job's) before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionAudit {
    pub id: i64,
    pub exception_id: i64,
    pub connection: String,
    pub at: Timestamp,
    /// `shipledger` for what shipledger did by itself (opened, closed).
    pub actor: String,
    /// `opened`, `closed`, or an [`ExceptionAction::name`].
    pub action: String,
    pub before: Value,
    pub after: Value,
    pub note: Option<String>,
}

/// Which audit rows to list, oldest first.
#[derive(Debug, Clone, Default)]
pub struct ExceptionAuditFilter {
    pub connection: Option<String>,
    pub exception_id: Option<i64>,
    /// Rows after this one (the last of the previous page).
    pub after_id: Option<i64>,
    /// 0: all.
    pub limit: u32,
}

string_enum! {
    /// What a shipment record is in ShipStation.
    ShipmentKind {
        /// A label made in ShipStation (`/shipments`, v2 `/labels`).
        Label => "label",
        /// An order marked shipped without a ShipStation label (`/fulfillments`).
        Fulfillment => "fulfillment",
    }
}

string_enum! {
    /// How far a shipment has been written back to the ERP.
    ShipmentState {
        /// Seen; nothing written to the ERP yet.
        Seen => "seen",
        /// The ERP fulfilment is recorded as packed with its tracking.
        Packed => "packed",
        /// The ERP fulfilment is completed (first carrier scan, or per policy).
        Completed => "completed",
        /// Voided; its ERP fulfilment was reversed (or an exception says what to undo).
        Reversed => "reversed",
        /// It belongs to no order shipledger pushed; an exception says so.
        Orphan => "orphan",
    }
}

/// One line of a shipment: which ERP line (by ShipStation `lineItemKey`) and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    pub line_item_key: Option<String>,
    pub sku: Option<String>,
    pub quantity: i64,
}

/// A ShipStation shipment (label) or fulfillment as shipledger keeps it: the same
/// shipment seen any number of times, by webhook or poll, is one record. It reads as
/// its [`ShipmentUpsert`] (through `Deref`), plus where and when the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentRecord {
    pub connection: String,
    #[serde(flatten)]
    pub shipment: ShipmentUpsert,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl std::ops::Deref for ShipmentRecord {
    type Target = ShipmentUpsert;
    fn deref(&self) -> &ShipmentUpsert {
        &self.shipment
    }
}

/// A shipment as written: everything but the store's own timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentUpsert {
    /// `label:{shipmentId}` (`label:{shipmentId}/{erp_id}` for an order merged into
    /// another) or `fulfillment:{fulfillmentId}`: unique per connection.
    pub shipment_key: String,
    pub kind: ShipmentKind,
    /// ShipStation's `shipmentId` or `fulfillmentId`.
    pub ss_id: i64,
    /// The ShipStation order it was made for (a split child's own id).
    pub ss_order_id: i64,
    pub ss_order_key: Option<String>,
    /// The ERP order it maps to (split children and merges resolved); `None` for an orphan.
    pub erp_id: Option<String>,
    pub carrier: String,
    pub service: Option<String>,
    pub tracking_number: Option<String>,
    pub ship_date: Option<jiff::civil::Date>,
    /// Label cost in minor units of `cost_currency`.
    pub cost_minor: Option<i64>,
    pub cost_currency: Option<String>,
    /// When ShipStation made it.
    pub ss_created_at: Timestamp,
    pub voided: bool,
    pub voided_at: Option<Timestamp>,
    pub lines: Vec<ShipmentLine>,
    /// The carrier's first physical scan, once seen.
    pub first_scan_at: Option<Timestamp>,
    /// The last tracking status code read (`NY`, `IT`, `DE`, ...).
    pub tracking_status: Option<String>,
    pub state: ShipmentState,
    /// The ERP fulfilment document this shipment was written to.
    pub erp_fulfilment_id: Option<String>,
}

/// What the scan sweep knows about a label awaiting its first carrier scan: when it
/// last asked, how many checks in a row found no physical scan, when to ask again,
/// and the coarse v2 `tracking_status` it last saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCheckState {
    /// The last check; `None` when never checked.
    pub last_checked_at: Option<Timestamp>,
    /// Checks since the label was made that found no physical scan.
    pub empty_checks: u32,
    /// When it is due to be checked again; `None`: at once (never checked).
    pub next_due_at: Option<Timestamp>,
    /// The coarse v2 label `tracking_status` last seen (`unknown`, `in_transit`,
    /// `error`, `delivered`); `None` when never seen.
    pub coarse_status: Option<String>,
}

/// A live label mapped to an ERP order, with a tracking number and no carrier scan
/// yet, as the scan sweep reads it ([`crate::Store::scans_due`],
/// [`crate::Store::scans_awaiting`]). It reads as its [`ShipmentRecord`] (`Deref`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwaitingScan {
    pub record: ShipmentRecord,
    pub check: ScanCheckState,
}

impl std::ops::Deref for AwaitingScan {
    type Target = ShipmentRecord;
    fn deref(&self) -> &ShipmentRecord {
        &self.record
    }
}

/// One check of a label that found no physical scan ([`crate::Store::mark_scans_checked`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCheck {
    pub shipment_key: String,
    pub checked_at: Timestamp,
    /// When to check it again.
    pub next_due_at: Timestamp,
    /// The coarse status seen; `None` keeps the one stored (a check that did not
    /// read it, or whose movement is still to be confirmed).
    pub coarse_status: Option<String>,
}

/// Which shipments to list ([`crate::Store::list_shipments`]), by ShipStation's
/// creation time, then connection and key (the order a cursor pages in).
#[derive(Debug, Clone, Default)]
pub struct ShipmentFilter {
    pub connection: Option<String>,
    pub erp_id: Option<String>,
    pub ss_order_id: Option<i64>,
    pub state: Option<ShipmentState>,
    /// Only labels, or only fulfillments.
    pub kind: Option<ShipmentKind>,
    /// Only voided ones (`true`), or only live ones (`false`).
    pub voided: Option<bool>,
    /// Only live labels with no carrier scan yet.
    pub awaiting_scan: bool,
    pub tracking_number: Option<String>,
    /// Shipments after this one (the last of the previous page).
    pub after: Option<ShipmentCursor>,
    /// 0: all.
    pub limit: u32,
}

/// Where a page of shipments ended: the last one's creation time, connection and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentCursor {
    pub ss_created_at: Timestamp,
    pub connection: String,
    pub shipment_key: String,
}

impl ShipmentCursor {
    /// The cursor after `shipment`.
    pub fn after(shipment: &ShipmentRecord) -> ShipmentCursor {
        ShipmentCursor {
            ss_created_at: shipment.ss_created_at,
            connection: shipment.connection.clone(),
            shipment_key: shipment.shipment_key.clone(),
        }
    }
}

/// One decision, committed atomically by [`crate::Store::commit`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub connection: String,
    pub now: Option<Timestamp>,
    pub order: Option<OrderUpsert>,
    pub jobs: Vec<NewJob>,
    pub finish_job: Option<JobFinish>,
    pub events: Vec<NewEvent>,
    pub open_exceptions: Vec<ExceptionOpen>,
    pub close_exceptions: Vec<ExceptionClose>,
    /// Move a watermark, compare-and-set: the commit fails whole with
    /// [`StoreError::WatermarkMoved`](crate::StoreError::WatermarkMoved) when the
    /// stored value is no longer the one the writer read.
    pub watermark: Option<WatermarkMove>,
    /// Shipments to write (insert or replace, by `shipment_key`).
    #[serde(default)]
    pub shipments: Vec<ShipmentUpsert>,
    /// Idempotency keys of pending jobs to run now rather than at their `next_run_at`
    /// (what this change freed them to do); keys of no pending job are ignored.
    #[serde(default)]
    pub wake_jobs: Vec<String>,
    /// Cost-ledger entries to record, insert-or-ignore by `entry_key` (an entry is
    /// never changed; one already recorded is left as it is). A reversal's
    /// `reverses_key` must name an entry recorded before or earlier in this change.
    #[serde(default)]
    pub cost_entries: Vec<NewCostEntry>,
    /// Conversions of recorded cost entries to the base currency, one per entry
    /// ever: the commit fails whole with
    /// [`StoreError::CostAlreadyConverted`](crate::StoreError::CostAlreadyConverted)
    /// when another worker converted the entry first (so its events are not written
    /// twice either).
    #[serde(default)]
    pub cost_conversions: Vec<NewCostConversion>,
    /// Cost batches planned (their journal frozen, their entries taken): the commit
    /// fails whole with [`StoreError::CostBatchMoved`](crate::StoreError::CostBatchMoved)
    /// when the key exists or an entry is already in another live batch (another
    /// worker planned first).
    #[serde(default)]
    pub cost_batches: Vec<NewCostBatch>,
    /// Batch states moved, compare-and-set from the state the writer read (the same
    /// error when it moved meanwhile).
    #[serde(default)]
    pub batch_moves: Vec<BatchMove>,
    /// Carrier invoices imported, with their charges.
    #[serde(default)]
    pub carrier_invoices: Vec<NewCarrierInvoice>,
    /// Unmatched invoice charges matched to their labels.
    #[serde(default)]
    pub invoice_matches: Vec<InvoiceMatch>,
}

impl Change {
    pub fn new(connection: &str, now: Timestamp) -> Change {
        Change { connection: connection.to_string(), now: Some(now), ..Change::default() }
    }

    /// Open an exception of `kind` on a record (or refresh the one already open).
    pub fn raise(&mut self, kind: ExceptionKind, record_type: &str, record_id: impl Into<String>, detail: Value) {
        self.open_exceptions.push(ExceptionOpen { kind, record_type: record_type.to_string(), record_id: record_id.into(), detail, job_id: None });
    }

    /// Close the open exception of `kind` on a record: its condition cleared.
    pub fn clear(&mut self, kind: ExceptionKind, record_type: &str, record_id: impl Into<String>) {
        self.close_exceptions.push(ExceptionClose { kind, record_type: record_type.to_string(), record_id: record_id.into() });
    }
}

/// A watermark moved by a [`Change`]: from the value the writer last read (or wrote)
/// to the next one. The store only checks that the stored value is still `from`
/// (`None`: no watermark stored yet); that `to` lies ahead of `from` is the writer's
/// to know, since only it knows what the text means (epoch ms, `ms|erp_id`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkMove {
    pub name: String,
    pub from: Option<String>,
    pub to: String,
}

impl WatermarkMove {
    pub fn new(name: impl Into<String>, from: Option<String>, to: impl Into<String>) -> WatermarkMove {
        WatermarkMove { name: name.into(), from, to: to.into() }
    }
}

/// Take a recurring pass ([`crate::Store::take_schedule`]).
#[derive(Debug, Clone)]
pub struct ScheduleTake<'a> {
    pub connection: &'a str,
    /// The pass's name (`erp_poll`, `shipment_poll`, …).
    pub name: &'a str,
    pub now: Timestamp,
    /// How long the pass is ours before another worker may take it over.
    pub lease: jiff::SignedDuration,
    /// Take it even when it is not due yet (never while another worker's lease lives).
    pub force: bool,
    /// Names the taker in the lease token, so [`crate::Store::release_leases`] finds it.
    pub worker: &'a str,
}

/// Give a recurring pass back ([`crate::Store::finish_schedule`]).
#[derive(Debug, Clone)]
pub struct ScheduleFinish<'a> {
    pub connection: &'a str,
    pub name: &'a str,
    /// The token the take returned; another one fails with `ScheduleLeaseLost`.
    pub lease_token: &'a str,
    /// When the pass is due again.
    pub next_due_at: Timestamp,
    /// `None`: it worked (its start becomes the last success). `Some`: why it failed.
    pub error: Option<&'a str>,
    pub now: Timestamp,
}

/// A recurring pass as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub connection: String,
    pub name: String,
    /// `None`: never run, due now.
    pub next_due_at: Option<Timestamp>,
    pub lease_token: Option<String>,
    pub lease_until: Option<Timestamp>,
    /// When the last pass (the one running now, if leased) started.
    pub last_started_at: Option<Timestamp>,
    /// When the last pass that worked started.
    pub last_success_at: Option<Timestamp>,
    /// Why the last pass failed (`None` once one works).
    pub last_error: Option<String>,
    /// Passes finished, worked or not.
    pub runs: i64,
    pub updated_at: Timestamp,
}

/// What [`crate::Store::release_leases`] gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedLeases {
    /// The jobs put back to pending: `(id, connection, kind as stored)`.
    pub jobs: Vec<(i64, String, String)>,
    /// The recurring passes whose leases were cleared: `(connection, name)`.
    pub schedules: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitOutcome {
    /// Ids of the jobs planned, in the order given (skipped ones left out).
    pub jobs_planned: Vec<i64>,
    /// Idempotency keys that already existed and were not planned again.
    pub jobs_skipped: Vec<String>,
    /// Ids of exceptions newly opened.
    pub exceptions_opened: Vec<i64>,
    /// Number of exceptions closed.
    pub exceptions_closed: u64,
    /// The kind of each exception newly opened, one entry per exception (what the
    /// metrics' open-exception gauges add).
    #[serde(default)]
    pub opened_kinds: Vec<ExceptionKind>,
    /// The kind of each exception closed, one entry per exception.
    #[serde(default)]
    pub closed_kinds: Vec<ExceptionKind>,
    /// Keys of the cost entries this commit recorded (ones already there left out).
    #[serde(default)]
    pub cost_entries_recorded: Vec<String>,
    /// Keys of the cost entries this commit converted.
    #[serde(default)]
    pub cost_conversions_recorded: Vec<String>,
    /// Keys of the cost batches this commit planned.
    #[serde(default)]
    pub cost_batches_planned: Vec<String>,
}

/// Pending or running jobs of one kind and state on a connection, with the earliest
/// `next_run_at` among them ([`crate::Store::job_stats`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobStats {
    pub connection: String,
    pub kind: String,
    pub state: JobState,
    pub count: u64,
    /// For pending jobs, when the earliest of them was (or is) due to run.
    pub earliest_run_at: Option<Timestamp>,
}

/// The jobs of one kind on a connection that a claim at some moment would take
/// (pending and due, or running with an expired lease), and when the first and the
/// last of them were planned ([`crate::Store::runnable_jobs`]). A webhook handler
/// reads it to wait until a burst of hints has settled before taking them together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnableJobs {
    pub count: u64,
    /// When the earliest planned of them was planned (`created_at`).
    pub first_planned_at: Option<Timestamp>,
    /// When the latest planned of them was planned.
    pub last_planned_at: Option<Timestamp>,
}

/// Open exceptions of one kind on a connection ([`crate::Store::count_open_exceptions`]);
/// the owner is the kind's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpenExceptions {
    pub connection: String,
    pub kind: ExceptionKind,
    pub count: u64,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub connection: Option<String>,
    pub state: Option<OrderState>,
    /// Orders whose number starts with this.
    pub number_prefix: Option<String>,
    /// The order ShipStation knows by this `orderId` (merged-away orders are found
    /// this way: ShipStation no longer answers for them).
    pub ss_order_id: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub connection: Option<String>,
    pub kind: Option<JobKind>,
    pub state: Option<JobState>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ExceptionFilter {
    pub connection: Option<String>,
    pub state: Option<ExceptionState>,
    /// Only live ones (open or acknowledged); with `state` too, both must hold.
    pub live: bool,
    pub assignee: Option<String>,
    /// Exceptions after this id (the last of the previous page); the list is in id
    /// order, oldest first.
    pub after_id: Option<i64>,
    pub kind: Option<ExceptionKind>,
    pub owner: Option<Owner>,
    pub record_type: Option<String>,
    pub record_id: Option<String>,
    pub limit: u32,
}

/// A carrier invoice to record with every charge it bills ([`Change::carrier_invoices`]):
/// the commit fails whole with
/// [`StoreError::InvoiceAlreadyImported`](crate::StoreError::InvoiceAlreadyImported)
/// when the connection has an invoice of that number from that carrier already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCarrierInvoice {
    pub carrier: String,
    pub number: String,
    pub date: jiff::civil::Date,
    /// The file it was read from (its name only, for people).
    pub file_name: String,
    /// [`Invoice::content_sha256`](shipledger_core::invoice::Invoice::content_sha256).
    pub content_sha256: String,
    pub charges: Vec<NewInvoiceCharge>,
}

/// One charge of a [`NewCarrierInvoice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInvoiceCharge {
    /// Its line in the file.
    pub row: u64,
    pub tracking_number: String,
    /// As the file words it.
    pub charge_type: String,
    pub charge: shipledger_core::cost::Charge,
    pub amount: shipledger_core::Money,
    /// The label it bills, when one has its tracking number.
    pub shipment_key: Option<String>,
}

/// A carrier invoice as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierInvoiceRecord {
    pub id: i64,
    pub connection: String,
    pub carrier: String,
    pub number: String,
    pub date: jiff::civil::Date,
    pub file_name: String,
    pub content_sha256: String,
    pub imported_at: Timestamp,
}

impl CarrierInvoiceRecord {
    /// The refusal of other content under this invoice's number.
    pub fn already_imported(&self) -> crate::StoreError {
        crate::StoreError::InvoiceAlreadyImported {
            connection: self.connection.clone(),
            carrier: self.carrier.clone(),
            number: self.number.clone(),
            file_name: self.file_name.clone(),
            imported_at: self.imported_at.to_string(),
        }
    }
}

/// One charge of an imported invoice, with its invoice's carrier, number and date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceChargeRecord {
    pub id: i64,
    pub connection: String,
    pub invoice_id: i64,
    pub carrier: String,
    pub invoice_number: String,
    pub invoice_date: jiff::civil::Date,
    pub row: u64,
    pub tracking_number: String,
    pub charge_type: String,
    pub charge: shipledger_core::cost::Charge,
    pub amount: shipledger_core::Money,
    /// The label it billed (`None`: no label with its tracking number is known yet).
    pub shipment_key: Option<String>,
    pub matched_at: Option<Timestamp>,
}

/// Which invoice charges to list ([`crate::Store::list_invoice_charges`]), by id.
#[derive(Debug, Clone, Default)]
pub struct InvoiceChargeFilter {
    pub connection: Option<String>,
    pub invoice_id: Option<i64>,
    pub shipment_key: Option<String>,
    pub tracking_number: Option<String>,
    /// Only charges no label is matched to yet.
    pub unmatched: bool,
}

/// A charge imported unmatched, now matched to the label it bills
/// ([`Change::invoice_matches`]): compare-and-set from unmatched, so the commit fails
/// whole with [`StoreError::InvoiceMoved`](crate::StoreError::InvoiceMoved) when
/// another import matched it first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceMatch {
    pub charge_id: i64,
    pub shipment_key: String,
}

/// Which cost entries to list ([`crate::Store::list_cost_entries`]), by label time
/// (`label_created_at`, then id), a page at a time.
#[derive(Debug, Clone, Default)]
pub struct CostEntryFilter {
    pub connection: Option<String>,
    /// The ERP order the entries' labels map to.
    pub erp_id: Option<String>,
    pub shipment_key: Option<String>,
    /// Labels made at or after this.
    pub since: Option<Timestamp>,
    /// Labels made before this.
    pub until: Option<Timestamp>,
    /// Entries after this one (the last of the previous page).
    pub after: Option<CostCursor>,
    /// Only entries in no live cost batch (planned or posted): what the batch
    /// planner places next.
    pub unbatched: bool,
    /// Only entries this batch (by id) holds or held (a withdrawn batch's too).
    pub batch_id: Option<i64>,
    /// Only converted entries (`true`), or only those waiting for a rate (`false`).
    pub converted: Option<bool>,
    /// 0: all.
    pub limit: u32,
}

/// Where a page of cost entries ended: the last entry's label time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostCursor {
    pub label_created_at: Timestamp,
    pub id: i64,
}

impl CostCursor {
    /// The cursor after `entry`.
    pub fn after(entry: &CostEntry) -> CostCursor {
        CostCursor { label_created_at: entry.label.label_created_at, id: entry.id }
    }
}

/// A conversion to record ([`Change::cost_conversions`]): how an entry became base
/// currency, and which rows of its source the rates are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCostConversion {
    pub conversion: shipledger_core::fx::Conversion,
    /// The rates' provenance within the source (`tryton:currency.currency.rate:12+7`,
    /// `rates.csv`, `fx_fixed USD/GBP 2026-11-01`).
    pub source_detail: String,
}

/// A conversion as the ledger keeps it, beside its entry (never changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostConversion {
    pub connection: String,
    pub entry_id: i64,
    #[serde(flatten)]
    pub conversion: shipledger_core::fx::Conversion,
    pub source_detail: String,
    pub converted_at: Timestamp,
}

string_enum! {
    /// Where a cost batch stands.
    BatchState {
        /// Its journal is frozen and its `post_journal` job planned.
        Planned => "planned",
        /// The ERP holds its journal, posted, as read back. Never changes again.
        Posted => "posted",
        /// Its ERP period closed (or locked) before it posted: nothing was written,
        /// and its entries are free for the next open window.
        Withdrawn => "withdrawn",
    }
}

/// One entry of a batch to plan, by key, and the window it was carried over from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMember {
    pub entry_key: String,
    pub carried_from: Option<shipledger_core::journal::Window>,
}

/// A cost batch to record ([`Change::cost_batches`]): the journal as it will be
/// posted and the entries it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCostBatch {
    pub batch_key: String,
    pub window: shipledger_core::journal::Window,
    pub revision: u32,
    pub journal: shipledger_core::journal::JournalWrite,
    pub members: Vec<BatchMember>,
    /// `Planned` (its `post_journal` job goes in the same change), or `Posted`
    /// straight away when it nets to zero and there is nothing to post.
    pub state: BatchState,
    /// Why, when it is not planned (`nets to zero: nothing posted`).
    pub detail: Option<String>,
    /// Its debit total in the base currency (zero when nothing is posted).
    pub total: shipledger_core::Money,
}

/// A batch's state moved ([`Change::batch_moves`]), from the one its writer read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMove {
    pub batch_key: String,
    pub from: BatchState,
    pub to: BatchState,
    /// The ERP's move (Tryton `account.move` number), once posted.
    pub erp_move_id: Option<String>,
    /// Why (a withdrawal's reason).
    pub detail: Option<String>,
}

/// A cost batch as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBatchRecord {
    pub id: i64,
    pub connection: String,
    pub batch_key: String,
    pub window: shipledger_core::journal::Window,
    pub revision: u32,
    pub state: BatchState,
    pub journal: shipledger_core::journal::JournalWrite,
    /// The journal's debit total in the base currency.
    pub total: shipledger_core::Money,
    pub entry_count: u32,
    pub carried_over: u32,
    pub erp_move_id: Option<String>,
    pub detail: Option<String>,
    pub planned_at: Timestamp,
    pub posted_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// Which cost batches to list ([`crate::Store::list_cost_batches`]), by connection,
/// window start, revision and id (the order a cursor pages in).
#[derive(Debug, Clone, Default)]
pub struct CostBatchFilter {
    /// Only the batch with this id.
    pub id: Option<i64>,
    pub connection: Option<String>,
    pub state: Option<BatchState>,
    /// Windows ending on or after this date.
    pub from: Option<jiff::civil::Date>,
    /// Windows starting on or before this date.
    pub to: Option<jiff::civil::Date>,
    /// Batches after this one (the last of the previous page).
    pub after: Option<BatchCursor>,
    /// 0: all.
    pub limit: u32,
}

/// Where a page of cost batches ended: the last one's connection, window start,
/// revision and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCursor {
    pub connection: String,
    pub window_start: jiff::civil::Date,
    pub revision: u32,
    pub id: i64,
}

impl BatchCursor {
    /// The cursor after `batch`.
    pub fn after(batch: &CostBatchRecord) -> BatchCursor {
        BatchCursor { connection: batch.connection.clone(), window_start: batch.window.start, revision: batch.revision, id: batch.id }
    }
}

// ---- the reconciler's copies and runs

/// A ShipStation order as the reconciler keeps it ([`crate::Store::stage_ss_orders`]).
/// Its `root_key` is where the diff judges it: its own `orderKey` (`ss:{id}` when it
/// has none); the store moves a split child under its parent's key and an order
/// merged into another under its own ledger order's key
/// ([`crate::Store::resolve_recon_keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedSsOrder {
    pub root_key: String,
    pub modified_at: Timestamp,
    pub view: shipledger_core::reconcile::SsOrderView,
}

/// A ShipStation label as the reconciler keeps it, under its order's `root_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedSsShipment {
    pub root_key: String,
    pub view: shipledger_core::reconcile::SsShipmentView,
}

/// An ERP order as the reconciler keeps it, under its ShipStation `orderKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedErpOrder {
    pub order_key: String,
    pub view: shipledger_core::reconcile::ErpSide,
}

/// What [`crate::Store::resolve_recon_keys`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedKeys {
    pub split_children: u64,
    pub merged: u64,
    pub shipments: u64,
}

string_enum! {
    ReconcileMode {
        /// Everything in the window read again.
        Full => "full",
        /// Only what changed since the last run read; the copies hold the rest.
        Incremental => "incremental",
    }
}

string_enum! {
    ReconcileState {
        Running => "running",
        Done => "done",
        Failed => "failed",
    }
}

/// One reconciler run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileRun {
    pub id: i64,
    pub connection: String,
    pub mode: ReconcileMode,
    /// The window's start: ShipStation and the ERP were read for changes since.
    pub since: Timestamp,
    pub state: ReconcileState,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// What it read and found (requests, rows, findings per kind, exceptions
    /// opened and closed).
    pub stats: Value,
    pub error: Option<String>,
}

/// One finding of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileFindingRecord {
    pub id: i64,
    pub run_id: i64,
    pub connection: String,
    pub kind: ExceptionKind,
    pub owner: shipledger_core::exception::Owner,
    pub record_type: String,
    pub record_id: String,
    pub detail: Value,
    /// The exception the finding opened or refreshed: the one of its kind on its
    /// record that was live when its run started (opened then, or before and not
    /// ended by then). `None` when there was none (the kind was ignored on the
    /// record, so the run raised nothing).
    pub exception_id: Option<i64>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct ReconcileRunFilter {
    pub connection: Option<String>,
    /// Runs with an id below this (the last of the previous page).
    pub before_id: Option<i64>,
    /// Only runs of this mode.
    pub mode: Option<ReconcileMode>,
    /// Only runs in this state.
    pub state: Option<ReconcileState>,
    /// 0: all.
    pub limit: u32,
}

/// Which findings to list, in id order.
#[derive(Debug, Clone, Default)]
pub struct ReconcileFindingFilter {
    pub run_id: Option<i64>,
    pub connection: Option<String>,
    pub kind: Option<ExceptionKind>,
    pub after_id: Option<i64>,
    /// 0: all.
    pub limit: u32,
}
