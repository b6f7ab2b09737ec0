//! The outbox's contract: every kind of job shipledger plans ([`JobKind`]) and what
//! each carries ([`JobSpec`], one typed payload per kind). The database keeps a job
//! as two columns, `kind` (the kind's text) and `payload` (the payload as JSON); the
//! texts and JSON shapes are the ones earlier releases wrote, so stored jobs keep
//! running across upgrades.
//!
//! A row whose kind this build does not know is never silently left unclaimed:
//! reading it is [`StoreError::UnknownJobKind`](crate::StoreError::UnknownJobKind),
//! naming the job and its kind, and [`Store::unknown_jobs`](crate::Store::unknown_jobs)
//! finds such rows cheaply so the engine can raise them to an admin. A row of a known
//! kind whose payload does not have its shape is finished `dead` by the claim that
//! found it (its `last_error` says why, [`unreadable_payload_error`]), so the other
//! jobs of its kind still run; [`Store::unreadable_jobs`](crate::Store::unreadable_jobs)
//! finds those for the admin.
//!
//! Adding a kind: a line in `jobs!` below with its payload struct, its handler file
//! under `engine/src/flows/`, and its arm in `flows::run_jobs` (the compiler asks for
//! that arm, and for its default retry policy in the engine's config). The engine's
//! tick runs every kind in the order of this list.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One line per job kind: `Variant(Payload) => "stored_kind",`. Makes [`JobKind`] and
/// [`JobSpec`] from the same list, so the two cannot disagree.
macro_rules! jobs {
    ($($(#[$meta:meta])* $variant:ident($payload:ty) => $text:literal,)*) => {
        string_enum! {
            /// The kinds of outbox job, as the `kind` column names them.
            JobKind { $($(#[$meta])* $variant => $text,)* }
        }

        /// A job's kind with its payload. Serialized adjacently tagged,
        /// `{"kind": ..., "payload": ...}`: the two columns of the row.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "payload")]
        pub enum JobSpec { $($(#[$meta])* #[serde(rename = $text)] $variant($payload),)* }

        impl JobSpec {
            pub fn kind(&self) -> JobKind {
                match self { $(JobSpec::$variant(_) => JobKind::$variant,)* }
            }
        }

        $(impl From<$payload> for JobSpec {
            fn from(payload: $payload) -> JobSpec {
                JobSpec::$variant(payload)
            }
        })*
    };
}

jobs! {
    /// Bring one order in ShipStation in line with its latest snapshot (the push).
    SyncOrder(SyncOrder) => "sync_order",
    /// A ShipStation v1 webhook: a hint, answered with others by one incremental poll.
    IngestV1Webhook(IngestV1Webhook) => "ingest_v1_webhook",
    /// A ShipStation v2 track webhook: record the scan it carries.
    IngestV2Track(IngestV2Track) => "ingest_v2_track",
    /// Write one phase of one shipment to the ERP's fulfilment, and read it back.
    WriteFulfilment(WriteFulfilment) => "write_fulfilment",
    /// Post one cost batch's journal to the ERP, and read it back.
    PostJournal(PostJournal) => "post_journal",
}

/// `post_journal`: the batch (by key) whose frozen journal to post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostJournal {
    pub batch_key: String,
}

/// `sync_order`: the order (by ERP id) and the snapshot hash that planned the job.
/// The push reads the order's *current* record, never the job's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOrder {
    pub erp_id: String,
    pub hash: String,
}

string_enum! {
    /// Which phase of a shipment a `write_fulfilment` job records in the ERP.
    Phase {
        /// A label was made: the fulfilment is packed, with tracking.
        Packed => "packed",
        /// The first carrier scan (or the label, per policy): the fulfilment is completed.
        Completed => "completed",
        /// The label was voided: the fulfilment is reversed.
        Cancelled => "cancelled",
    }
}

/// `write_fulfilment`: one shipment's phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFulfilment {
    pub shipment_key: String,
    pub phase: Phase,
}

/// `ingest_v1_webhook`: a v1 webhook's hint, as the receiver checked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestV1Webhook {
    /// The resource ShipStation named (with `includeShipmentItems=true` for
    /// shipments): checked against the configured API, never fetched.
    pub resource_url: String,
    /// ShipStation's `resource_type` (`SHIP_NOTIFY`, `FULFILLMENT_SHIPPED`, ...).
    pub resource_type: String,
    /// When the receiver stored it (absent on jobs planned without a receiver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Timestamp>,
}

/// `ingest_v2_track`: a v2 track webhook's body, kept whole as ShipStation sent it
/// (its `data` is the tracking information).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IngestV2Track {
    pub body: Value,
}

impl IngestV2Track {
    /// The tracking information the webhook carries, when it has any.
    pub fn data(&self) -> Option<&Value> {
        self.body.get("data").filter(|d| !d.is_null())
    }

    /// The webhook's `resource_type` (`API_TRACK`, `TRACK_EVENT_V2`).
    pub fn resource_type(&self) -> Option<&str> {
        self.body.get("resource_type").and_then(Value::as_str)
    }
}

/// Why a stored job could not be read as a [`JobSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobDecodeError {
    /// The kind is none this build knows.
    UnknownKind,
    /// The kind is known but the payload does not have its shape.
    Payload(String),
}

impl JobSpec {
    /// The payload as stored in the `payload` column.
    pub fn payload(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut tagged)) => tagged.remove("payload").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// Read a job from its two columns.
    pub fn decode(kind: &str, payload: Value) -> Result<JobSpec, JobDecodeError> {
        if JobKind::parse(kind).is_none() {
            return Err(JobDecodeError::UnknownKind);
        }
        serde_json::from_value(serde_json::json!({"kind": kind, "payload": payload}))
            .map_err(|e| JobDecodeError::Payload(e.to_string()))
    }
}

/// Whether a failed attempt that puts a job back counts against its attempts
/// ([`crate::Store::retry_job`]). The claim counted it; `NotCounted` puts it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attempt {
    /// A failure: the attempt stays counted.
    Counted,
    /// A wait the other side named (a rate limit, a `Retry-After`): not an attempt.
    NotCounted,
}

/// Jobs of one kind that are not run: pending or running jobs of a kind this build
/// does not know ([`crate::Store::unknown_jobs`]), or dead jobs whose payload could
/// not be read ([`crate::Store::unreadable_jobs`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownJobs {
    /// The kind as stored.
    pub kind: String,
    /// How many such jobs have it.
    pub count: u64,
    /// The oldest of their ids (at most [`UNKNOWN_IDS_KEPT`]).
    pub ids: Vec<i64>,
}

/// The words in a dead job's `last_error` that say the claim could not read its
/// payload ([`unreadable_payload_error`]); [`crate::Store::unreadable_jobs`] finds
/// such jobs by them.
pub const UNREADABLE_PAYLOAD: &str = "'s payload cannot be read: ";

/// The `last_error` of a job the claim finished dead because its payload does not
/// have its kind's shape: "job 7's payload cannot be read: ... ".
pub fn unreadable_payload_error(job_id: i64, kind: &str, detail: &str) -> String {
    format!(
        "job {job_id}{UNREADABLE_PAYLOAD}{detail} (kind {kind:?}); it was not run. \
         Correct its payload and set it back to pending, or delete it once its work is done another way"
    )
}

/// How many ids [`UnknownJobs`] names at most.
pub const UNKNOWN_IDS_KEPT: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_reads_back_the_payload_earlier_releases_wrote() {
        let sync = JobSpec::decode("sync_order", json!({"erp_id": "1001", "hash": "abc"})).unwrap();
        assert_eq!(sync, JobSpec::SyncOrder(SyncOrder { erp_id: "1001".into(), hash: "abc".into() }));
        assert_eq!(sync.payload(), json!({"erp_id": "1001", "hash": "abc"}));

        let write = JobSpec::decode("write_fulfilment", json!({"shipment_key": "label:7", "phase": "cancelled"})).unwrap();
        assert_eq!(write.kind(), JobKind::WriteFulfilment);
        assert_eq!(write.payload(), json!({"shipment_key": "label:7", "phase": "cancelled"}));

        let at: Timestamp = "2026-05-01T10:00:00.123Z".parse().unwrap();
        let old = json!({"resource_url": "https://ssapi.shipstation.com/shipments?batchId=1", "resource_type": "SHIP_NOTIFY", "received_at": at.to_string()});
        let hook = JobSpec::decode("ingest_v1_webhook", old.clone()).unwrap();
        assert_eq!(hook.payload(), old, "received_at is written as it always was");
        let JobSpec::IngestV1Webhook(hook) = hook else { panic!("{hook:?}") };
        assert_eq!(hook.received_at, Some(at));

        let body = json!({"resource_type": "API_TRACK", "data": {"status_code": "IT"}});
        let track = JobSpec::decode("ingest_v2_track", body.clone()).unwrap();
        assert_eq!(track.payload(), body, "the body is kept whole");
    }

    #[test]
    fn an_unknown_kind_or_a_payload_of_the_wrong_shape_is_named_not_guessed() {
        assert_eq!(JobSpec::decode("post_refund", json!({})), Err(JobDecodeError::UnknownKind));
        let Err(JobDecodeError::Payload(why)) = JobSpec::decode("write_fulfilment", json!({"shipment_key": "label:7", "phase": "shipped"}))
        else {
            panic!("an unknown phase is refused")
        };
        assert!(why.contains("shipped"), "{why}");
        assert_eq!(JobKind::SyncOrder, "sync_order");
        assert_eq!(JobKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(), ["sync_order", "ingest_v1_webhook", "ingest_v2_track", "write_fulfilment", "post_journal"]);
    }
}
