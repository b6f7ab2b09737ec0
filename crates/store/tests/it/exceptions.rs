//! Exceptions: one open per kind and record, owned, filtered, closed, resolved.

use serde_json::json;
use shipledger_core::exception::{ExceptionKind, Owner, Severity};
use shipledger_store::{
    Change, ExceptionClose, ExceptionFilter, ExceptionOpen, ExceptionState, StoreError,
};

use crate::harness::{ACME, BETA, TestDb, t};

fn open(kind: ExceptionKind, record_id: &str, message: &str) -> ExceptionOpen {
    ExceptionOpen {
        kind,
        record_type: "order".into(),
        record_id: record_id.into(),
        detail: json!({"message": message}),
    }
}

fn close(kind: ExceptionKind, record_id: &str) -> ExceptionClose {
    ExceptionClose {
        kind,
        record_type: "order".into(),
        record_id: record_id.into(),
    }
}

pub async fn a_second_open_of_the_same_exception_refreshes_it_and_after_closing_a_new_one_opens(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change.open_exceptions.push(open(
        ExceptionKind::HeldMissingWeight,
        "1001",
        "line L1 has no weight",
    ));
    let opened = store.commit(change).await?.exceptions_opened;
    assert_eq!(opened.len(), 1);

    let mut change = Change::new(ACME, t(60));
    change.open_exceptions.push(open(
        ExceptionKind::HeldMissingWeight,
        "1001",
        "lines L1, L2 have no weight",
    ));
    assert!(
        store.commit(change).await?.exceptions_opened.is_empty(),
        "refreshed, not opened"
    );

    let all = store.list_exceptions(ExceptionFilter::default()).await?;
    assert_eq!(all.len(), 1);
    let refreshed = &all[0];
    assert_eq!(refreshed.id, opened[0]);
    assert_eq!(refreshed.occurrences, 2);
    assert_eq!((refreshed.first_seen, refreshed.last_seen), (t(0), t(60)));
    assert_eq!(
        refreshed.detail,
        json!({"message": "lines L1, L2 have no weight"})
    );
    assert_eq!(
        (refreshed.owner, refreshed.severity),
        (Owner::Ops, Severity::Error)
    );
    assert_eq!(refreshed.state, ExceptionState::Open);

    // The weight was fixed in the ERP: the condition cleared.
    let mut change = Change::new(ACME, t(120));
    change
        .close_exceptions
        .push(close(ExceptionKind::HeldMissingWeight, "1001"));
    change
        .close_exceptions
        .push(close(ExceptionKind::HeldUnpaid, "1001"));
    assert_eq!(store.commit(change).await?.exceptions_closed, 1);
    let closed = store.get_exception(opened[0]).await?.unwrap();
    assert_eq!(
        (closed.state, closed.last_seen),
        (ExceptionState::Closed, t(120))
    );

    // Broken again later: a new exception, counted from one.
    let mut change = Change::new(ACME, t(300));
    change.open_exceptions.push(open(
        ExceptionKind::HeldMissingWeight,
        "1001",
        "line L1 has no weight",
    ));
    let reopened = store.commit(change).await?.exceptions_opened;
    assert_eq!(reopened.len(), 1);
    assert_ne!(reopened[0], opened[0]);
    let fresh = store.get_exception(reopened[0]).await?.unwrap();
    assert_eq!((fresh.occurrences, fresh.first_seen), (1, t(300)));
    assert_eq!(
        store
            .list_exceptions(ExceptionFilter::default())
            .await?
            .len(),
        2
    );
    Ok(())
}

pub async fn exceptions_filter_by_owner_state_and_kind(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change
        .open_exceptions
        .push(open(ExceptionKind::HeldUnpaid, "1001", "authorised only"));
    change
        .open_exceptions
        .push(open(ExceptionKind::HeldMissingWeight, "1001", "no weight"));
    change
        .open_exceptions
        .push(open(ExceptionKind::HeldMissingWeight, "1002", "no weight"));
    store.commit(change).await?;
    let mut change = Change::new(BETA, t(1));
    change
        .open_exceptions
        .push(open(ExceptionKind::HeldUnpaid, "1001", "unpaid"));
    store.commit(change).await?;
    let mut change = Change::new(ACME, t(2));
    change
        .close_exceptions
        .push(close(ExceptionKind::HeldMissingWeight, "1002"));
    store.commit(change).await?;

    let acme = |filter: ExceptionFilter| ExceptionFilter {
        connection: Some(ACME.into()),
        ..filter
    };
    let finance = store
        .list_exceptions(acme(ExceptionFilter {
            owner: Some(Owner::Finance),
            ..Default::default()
        }))
        .await?;
    assert_eq!(finance.len(), 1);
    assert_eq!(
        (finance[0].kind, finance[0].severity),
        (ExceptionKind::HeldUnpaid, Severity::Warning)
    );

    let open_ops = store
        .list_exceptions(acme(ExceptionFilter {
            owner: Some(Owner::Ops),
            state: Some(ExceptionState::Open),
            ..Default::default()
        }))
        .await?;
    assert_eq!(
        open_ops
            .iter()
            .map(|e| e.record_id.as_str())
            .collect::<Vec<_>>(),
        ["1001"]
    );

    let weight = store
        .list_exceptions(acme(ExceptionFilter {
            kind: Some(ExceptionKind::HeldMissingWeight),
            ..Default::default()
        }))
        .await?;
    assert_eq!(weight.len(), 2);
    let on_1001 = store
        .list_exceptions(acme(ExceptionFilter {
            record_type: Some("order".into()),
            record_id: Some("1001".into()),
            ..Default::default()
        }))
        .await?;
    assert_eq!(on_1001.len(), 2);
    let everyone_unpaid = store
        .list_exceptions(ExceptionFilter {
            kind: Some(ExceptionKind::HeldUnpaid),
            ..Default::default()
        })
        .await?;
    assert_eq!(everyone_unpaid.len(), 2);
    let one = store
        .list_exceptions(ExceptionFilter {
            limit: 1,
            ..Default::default()
        })
        .await?;
    assert_eq!(one.len(), 1);
    Ok(())
}

pub async fn a_person_resolving_an_exception_is_on_the_records_timeline(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change
        .open_exceptions
        .push(open(ExceptionKind::PushRejected, "1001", "bad address"));
    let id = store.commit(change).await?.exceptions_opened[0];

    let resolved = store
        .set_exception_state(
            id,
            ExceptionState::Resolved,
            "fixed by hand in ShipStation",
            t(50),
        )
        .await?;
    assert_eq!(resolved.state, ExceptionState::Resolved);
    assert_eq!(
        resolved.note.as_deref(),
        Some("fixed by hand in ShipStation")
    );
    assert_eq!(store.get_exception(id).await?.unwrap(), resolved);
    let timeline = store.timeline(ACME, "order", "1001").await?;
    assert_eq!(timeline.len(), 1);
    assert_eq!(
        (timeline[0].kind.as_str(), timeline[0].at),
        ("exception_resolved", t(50))
    );
    assert_eq!(timeline[0].detail["note"], "fixed by hand in ShipStation");

    // With it resolved, the same condition may open a new one; reopening the old one
    // then would make two open: refused.
    let mut change = Change::new(ACME, t(60));
    change.open_exceptions.push(open(
        ExceptionKind::PushRejected,
        "1001",
        "bad address again",
    ));
    store.commit(change).await?;
    let clash = store
        .set_exception_state(id, ExceptionState::Open, "reopen", t(70))
        .await;
    assert!(matches!(clash, Err(StoreError::Database(_))), "{clash:?}");

    let missing = store
        .set_exception_state(424_242, ExceptionState::Ignored, "?", t(70))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(store.get_exception(424_242).await?, None);
    Ok(())
}
