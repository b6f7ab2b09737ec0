//! What the flows' unit tests share: a connection that is never dialled, a paid and
//! complete ERP order, its product master, and the record a decision would commit.
//! Only the pure decisions are tested with these; the stories in `tests/it` run the
//! whole engine against the sandboxes.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use shipledger_core::money::{Currency, Money};
use shipledger_core::order::{Address, ErpLine, ErpOrder, ErpOrderStatus, PaymentEvidence, PaymentState, Product};
use shipledger_core::release::GatePolicy;
use shipledger_core::weight::Weight;
use shipledger_shipstation::{ClientConfig, V1Client};
use shipledger_store::{Change, Job, JobState, OrderRecord};

use crate::Connection;
use crate::config::Policy;

/// Nothing listens here: a decision that tried to call out would fail the test.
const NOWHERE: &str = "http://127.0.0.1:9/";

/// The `acme-uk` connection, sending to ShipStation store 42. Its clients are never
/// called by the functions under test.
pub(crate) fn connection() -> Connection {
    let erp = shipledger_erp::sandbox::SandboxErpClient::new(NOWHERE, "erp-key").expect("a valid URL");
    let shipstation = V1Client::new(ClientConfig::v1(NOWHERE.parse().expect("a valid URL"), "key", "secret"))
        .expect("a client that is never called");
    Connection {
        name: "acme-uk".into(),
        erp: Arc::new(erp),
        shipstation,
        shipstation_v2: None,
        account_currency: Currency::USD,
        policy: Policy::default(),
        gate: GatePolicy::default(),
        store_id: Some(42),
        store_ids: Vec::new(),
        accounts: None,
    }
}

pub(crate) fn gbp(minor: i64) -> Money {
    Money::from_minor(minor, Currency::GBP)
}

pub(crate) fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_790_000_000 + second).expect("a valid time")
}

/// A paid, complete order: two mugs (weight from the product master) and a tea with
/// its own weight, plus a non-physical discount.
pub(crate) fn paid_order(erp_id: &str) -> ErpOrder {
    ErpOrder {
        erp_id: erp_id.into(),
        number: erp_id.into(),
        status: ErpOrderStatus::Open,
        status_reason: None,
        currency: "GBP".into(),
        placed_at: at(0),
        updated_at: at(10),
        customer_email: Some("ada@example.com".into()),
        ship_to: Address {
            name: Some("Ada Lovelace".into()),
            street1: Some("12 St James's Sq".into()),
            city: Some("London".into()),
            postal_code: Some("SW1Y 4JH".into()),
            country: Some("GB".into()),
            ..Address::default()
        },
        bill_to: None,
        lines: vec![
            ErpLine {
                line_id: "L1".into(),
                sku: Some("MUG".into()),
                name: "Blue mug".into(),
                quantity: 2,
                unit_price: gbp(1250),
                unit_weight: None,
                physical: true,
            },
            ErpLine {
                line_id: "L2".into(),
                sku: Some("TEA".into()),
                name: "Earl Grey".into(),
                quantity: 1,
                unit_price: gbp(2000),
                unit_weight: Some(Weight::from_grams(260)),
                physical: true,
            },
            ErpLine {
                line_id: "D1".into(),
                sku: None,
                name: "Welcome discount".into(),
                quantity: 1,
                unit_price: gbp(-500),
                unit_weight: None,
                physical: false,
            },
        ],
        shipping_paid: Some(gbp(495)),
        tax_paid: None,
        payment: PaymentEvidence {
            state: PaymentState::Captured,
            source: format!("payment:PAY-{erp_id}"),
            amount: gbp(4495),
            at: Some(at(5)),
        },
        requested_service: None,
        customer_reference: None,
    }
}

/// The ERP's product master: MUG 350 g, TEA 250 g, BOX without a weight.
pub(crate) fn products() -> HashMap<String, Product> {
    [("MUG", Some(350)), ("TEA", Some(250)), ("BOX", None)]
        .into_iter()
        .map(|(sku, grams)| {
            (sku.to_string(), Product { sku: sku.into(), name: sku.into(), unit_weight: grams.map(Weight::from_grams), active: true })
        })
        .collect()
}

/// The order record the store would hold after committing `change`.
pub(crate) fn committed(change: &Change) -> OrderRecord {
    let u = change.order.as_ref().expect("the decision writes the order");
    let now = change.now.expect("a decision is dated");
    OrderRecord {
        connection: change.connection.clone(),
        erp_id: u.erp_id.clone(),
        number: u.number.clone(),
        state: u.state,
        snapshot: u.snapshot.clone(),
        snapshot_hash: u.snapshot_hash.clone(),
        erp_updated_at: u.erp_updated_at,
        order_key: u.order_key.clone(),
        ss_order_id: u.ss_order_id,
        ss_status: u.ss_status.clone(),
        payment: u.payment.clone(),
        pushed_hash: u.pushed_hash.clone(),
        released_at: u.released_at,
        pushed_at: u.pushed_at,
        created_at: now,
        updated_at: now,
    }
}

/// A `sync_order` job for `erp_id` as a worker holds it after claiming it for the
/// `attempts`-th time; planned at `at(0)`.
pub(crate) fn claimed(id: i64, erp_id: &str, attempts: i64) -> Job {
    Job {
        id,
        connection: "acme-uk".into(),
        spec: shipledger_store::JobSpec::SyncOrder(shipledger_store::SyncOrder { erp_id: erp_id.into(), hash: format!("hash-{id}") }),
        idempotency_key: format!("sync:{erp_id}:{id}"),
        state: JobState::Running,
        attempts,
        next_run_at: at(0),
        lease_until: Some(at(30)),
        lease_token: Some("lease".into()),
        last_error: None,
        created_at: at(0),
        updated_at: at(0),
    }
}
