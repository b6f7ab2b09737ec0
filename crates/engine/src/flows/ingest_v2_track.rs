//! The `ingest_v2_track` handler: a v2 track webhook, stored whole by the receiver,
//! records the carrier's first scan on every label with its tracking number (and so
//! plans the ERP's *completed* write), as the scan poll does
//! ([`shipments::record_tracking`](crate::flows::shipments)). A body that cannot be
//! read is given up at once, raised to an admin as `integration_fault`; a store
//! failure stops the pass and the job runs again once its lease expires.

use shipledger_store::{Job, JobKind, JobSpec, ShipmentFilter as StoredShipments, ShipmentKind};

use crate::flows::shipments::{ShipmentReport, record_tracking};
use crate::jobs;
use crate::{Connection, Engine, EngineError};

/// Run `ingest_v2_track` jobs until none is runnable.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    while step(engine, conn, &mut report).await? {}
    Ok(report)
}

/// One bounded step: claim up to 50 runnable `ingest_v2_track` jobs, held for as long
/// as the step runs ([`jobs::claim_held`]), and record each; one whose lease was lost
/// meanwhile is left to the worker that took it (its scans are not recorded twice).
/// `false` when none was runnable.
pub async fn step(engine: &Engine, conn: &Connection, report: &mut ShipmentReport) -> Result<bool, EngineError> {
    let (jobs, lease) = jobs::claim_held(engine, conn, JobKind::IngestV2Track, 50).await?;
    if jobs.is_empty() {
        return Ok(false);
    }
    for job in jobs {
        if !lease.still_holds(conn, &job, "v2 track webhook") {
            continue;
        }
        match ingest(engine, conn, &job, report).await {
            Ok(()) => jobs::done(engine, &job, jobs::change(engine, conn)).await?,
            Err(EngineError::Store(e)) => return Err(EngineError::Store(e)),
            Err(e) => {
                let what = "a ShipStation v2 track webhook could not be ingested";
                jobs::fail_hint(engine, conn, &job, &e, what, "the scan sweep still reads the label's tracking").await?;
            }
        }
    }
    Ok(true)
}

async fn ingest(engine: &Engine, conn: &Connection, job: &Job, report: &mut ShipmentReport) -> Result<(), EngineError> {
    let JobSpec::IngestV2Track(track) = &job.spec else {
        return Err(EngineError::Setup(format!("job {} is a {} job, not an ingest_v2_track", job.id, job.kind())));
    };
    let Some(data) = track.data() else { return Ok(()) };
    let info: shipledger_shipstation::v2::model::TrackingInfo = serde_json::from_str(&data.to_string())
        .map_err(|e| EngineError::Setup(format!("a track webhook's data could not be read: {e}")))?;
    let Some(number) = info.tracking_number.clone() else { return Ok(()) };
    let shipments = engine
        .store
        .list_shipments(StoredShipments { connection: Some(conn.name.clone()), tracking_number: Some(number), ..Default::default() })
        .await?;
    for s in shipments.iter().filter(|s| s.kind == ShipmentKind::Label) {
        if record_tracking(engine, conn, s, &info).await? {
            report.scanned += 1;
        }
    }
    Ok(())
}
