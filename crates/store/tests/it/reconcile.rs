//! The reconciler's copies: staged many rows a statement, the last copy of a record
//! in one call winning, and read back a page at a time in byte order of their keys
//! with nothing skipped or repeated across pages and statements.

use std::collections::BTreeMap;

use shipledger_core::order::ErpOrderStatus;
use shipledger_core::reconcile::{ErpSide, SsOrderView};
use shipledger_store::{StagedErpOrder, StagedSsOrder};

use crate::harness::{ACME, BETA, TestDb, t};

fn ss_order(id: i64, key: &str, status: &str) -> StagedSsOrder {
    StagedSsOrder {
        root_key: key.to_string(),
        modified_at: t(id),
        view: SsOrderView {
            ss_order_id: id,
            order_key: Some(key.to_string()),
            order_number: format!("SO-{id}"),
            store_id: Some(1),
            status: status.to_string(),
            parent_id: None,
            merged_into: None,
            created_at: Some(t(0)),
            ship_by: None,
        },
    }
}

fn erp_order(n: usize, key: &str, status: ErpOrderStatus) -> StagedErpOrder {
    StagedErpOrder {
        order_key: key.to_string(),
        view: ErpSide {
            erp_id: format!("SO-{n}"),
            number: format!("SO-{n}"),
            status,
            paid: true,
            lines: BTreeMap::from([("l1".to_string(), 1)]),
            placed_at: t(0),
            updated_at: t(n as i64),
            fulfilments: Vec::new(),
            invoiced: None,
        },
    }
}

pub async fn copies_are_staged_in_bulk_the_last_copy_wins_and_pages_come_back_in_key_order(db: &TestDb) -> anyhow::Result<()> {
    // 1,234 orders: more than two statements' worth, keys in no particular order
    // (mixed case and digits, as order keys are), and order 7 twice in one call:
    // the later copy (cancelled) is the one kept.
    let keys: Vec<String> = (0..1234).map(|i| format!("{}-{:04x}", if i % 3 == 0 { "Zk" } else { "ak" }, (i * 7919) % 65_536)).collect();
    let mut orders: Vec<StagedSsOrder> = keys.iter().enumerate().map(|(i, k)| ss_order(i as i64 + 1, k, "awaiting_shipment")).collect();
    orders.push(ss_order(7, &keys[6], "cancelled"));
    db.store.stage_ss_orders(ACME, &orders).await?;
    let erp: Vec<StagedErpOrder> = keys.iter().enumerate().map(|(i, k)| erp_order(i, k, ErpOrderStatus::Open)).collect();
    db.store.stage_erp_orders(ACME, &erp).await?;
    // Another connection's copies are never read as ours.
    db.store.stage_ss_orders(BETA, &[ss_order(1, &keys[0], "shipped")]).await?;

    let mut read = Vec::new();
    let mut after: Option<(String, i64)> = None;
    loop {
        let page = db.store.page_ss_orders(ACME, after.as_ref().map(|(k, i)| (k.as_str(), *i)), 100).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.root_key.clone(), last.view.ss_order_id));
        read.extend(page);
    }
    assert_eq!(read.len(), 1234, "every order once, none twice");
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(read.iter().map(|o| o.root_key.clone()).collect::<Vec<_>>(), sorted, "byte order of keys, across pages");
    let seventh = read.iter().find(|o| o.view.ss_order_id == 7).expect("order 7");
    assert_eq!(seventh.view.status, "cancelled", "the later copy in the call wins");
    assert!(read.iter().all(|o| o.view.status != "shipped"), "another connection's copy stays its own");

    // Staging again updates in place.
    db.store.stage_erp_orders(ACME, &[erp_order(3, &keys[3], ErpOrderStatus::Cancelled)]).await?;
    let mut erp_read = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = db.store.page_erp_orders(ACME, after.as_deref(), 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.order_key.clone());
        erp_read.extend(page);
    }
    assert_eq!(erp_read.len(), 1234);
    let third = erp_read.iter().find(|o| o.view.erp_id == "SO-3").expect("SO-3");
    assert_eq!(third.view.status, ErpOrderStatus::Cancelled);
    Ok(())
}
