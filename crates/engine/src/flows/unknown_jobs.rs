//! Jobs of a kind this build does not know (planned by a newer or an older release
//! sharing the store, or written by hand) are never run and never silently left
//! waiting: every check raises one admin `job_kind_unknown` exception per kind,
//! naming how many there are and the oldest ids, logs an error, and closes the
//! exception once no pending or running job of that kind is left.
//!
//! Jobs of a known kind whose payload could not be read were finished dead by the
//! claim that found them (so the rest of their kind still ran); every check raises
//! one admin `job_payload_unreadable` exception per kind naming them, closed once no
//! such dead job is left (corrected and set back to pending, or deleted).

use std::collections::BTreeSet;

use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_store::{ExceptionFilter, JobKind, RecordType};

use crate::{Connection, Engine, EngineError};

/// The check: jobs of unknown kinds, then dead jobs whose payload could not be read,
/// each raised or closed. Returns how many kinds had either.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<usize, EngineError> {
    Ok(unknown_kinds(engine, conn).await? + unreadable(engine, conn).await?)
}

/// Look for unknown kinds on the connection and raise or close their exceptions.
/// Returns how many unknown kinds have pending or running jobs.
pub async fn unknown_kinds(engine: &Engine, conn: &Connection) -> Result<usize, EngineError> {
    let unknown = engine.store.unknown_jobs(&conn.name).await?;
    let open = engine
        .store
        .list_exceptions(ExceptionFilter {
            connection: Some(conn.name.clone()),
            live: true,
            kind: Some(ExceptionKind::JobKindUnknown),
            ..Default::default()
        })
        .await?;
    let open: BTreeSet<String> = open.into_iter().map(|e| e.record_id).collect();
    let kinds: BTreeSet<&str> = unknown.iter().map(|u| u.kind.as_str()).collect();
    let gone: Vec<&String> = open.iter().filter(|k| !kinds.contains(k.as_str())).collect();
    if unknown.is_empty() && gone.is_empty() {
        return Ok(0);
    }
    let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut change = shipledger_store::Change::new(&conn.name, engine.clock.now());
    for u in &unknown {
        let ids = u.ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        tracing::error!(
            connection = %conn.name, kind = %u.kind, jobs = u.count, ids = %ids,
            "the store holds jobs of a kind this version does not know; they are not run"
        );
        change.raise(
            ExceptionKind::JobKindUnknown,
            RecordType::JobKind.as_str(),
            u.kind.clone(),
            json!({
                "message": format!(
                    "{} pending or running job(s) of kind {:?} (ids {ids}{}) are not run: this version of shipledger knows {}. \
                     Run the shipledger version that planned them, or mark them dead once their work is done another way",
                    u.count, u.kind, if (u.ids.len() as u64) < u.count { ", ..." } else { "" }, known.join(", ")
                ),
                "kind": u.kind,
                "count": u.count,
                "job_ids": u.ids,
            }),
        );
    }
    for kind in gone {
        change.clear(ExceptionKind::JobKindUnknown, RecordType::JobKind.as_str(), kind.clone());
    }
    engine.store.commit(change).await?;
    Ok(unknown.len())
}

/// Look for dead jobs whose payload could not be read and raise or close their
/// exceptions. Returns how many kinds have such jobs.
pub async fn unreadable(engine: &Engine, conn: &Connection) -> Result<usize, EngineError> {
    let unreadable = engine.store.unreadable_jobs(&conn.name).await?;
    let open = engine
        .store
        .list_exceptions(ExceptionFilter {
            connection: Some(conn.name.clone()),
            live: true,
            kind: Some(ExceptionKind::JobPayloadUnreadable),
            ..Default::default()
        })
        .await?;
    let kinds: BTreeSet<&str> = unreadable.iter().map(|u| u.kind.as_str()).collect();
    let gone: Vec<String> = open.into_iter().map(|e| e.record_id).filter(|k| !kinds.contains(k.as_str())).collect();
    if unreadable.is_empty() && gone.is_empty() {
        return Ok(0);
    }
    let mut change = shipledger_store::Change::new(&conn.name, engine.clock.now());
    for u in &unreadable {
        let ids = u.ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        tracing::error!(
            connection = %conn.name, kind = %u.kind, jobs = u.count, ids = %ids,
            "the store holds jobs whose payload cannot be read; they were finished dead, not run"
        );
        change.raise(
            ExceptionKind::JobPayloadUnreadable,
            RecordType::JobKind.as_str(),
            u.kind.clone(),
            json!({
                "message": format!(
                    "{} job(s) of kind {:?} (ids {ids}{}) were finished dead, not run: their payload does not have the shape \
                     this version of shipledger reads (each job's last_error says why). Correct the payload and set the job \
                     back to pending, or delete it once its work is done another way",
                    u.count, u.kind, if (u.ids.len() as u64) < u.count { ", ..." } else { "" }
                ),
                "kind": u.kind,
                "count": u.count,
                "job_ids": u.ids,
            }),
        );
    }
    for kind in gone {
        change.clear(ExceptionKind::JobPayloadUnreadable, RecordType::JobKind.as_str(), kind);
    }
    engine.store.commit(change).await?;
    Ok(unreadable.len())
}
