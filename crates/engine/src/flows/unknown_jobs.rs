//! Jobs of a kind this build does not know (planned by a newer or an older release
//! sharing the store, or written by hand) are never run and never silently left
//! waiting: every check raises one admin `job_kind_unknown` exception per kind,
//! naming how many there are and the oldest ids, logs an error, and closes the
//! exception once no pending or running job of that kind is left.

use std::collections::BTreeSet;

use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_store::{ExceptionFilter, ExceptionState, JobKind, RecordType};

use crate::{Connection, Engine, EngineError};

/// Look for unknown kinds on the connection and raise or close their exceptions.
/// Returns how many unknown kinds have pending or running jobs.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<usize, EngineError> {
    let unknown = engine.store.unknown_jobs(&conn.name).await?;
    let open = engine
        .store
        .list_exceptions(ExceptionFilter {
            connection: Some(conn.name.clone()),
            state: Some(ExceptionState::Open),
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
