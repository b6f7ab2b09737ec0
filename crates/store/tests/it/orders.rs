//! Orders: listing, filtering, counting, and finding by ShipStation order key.

use shipledger_store::{Change, OrderFilter, OrderState};

use crate::harness::{ACME, BETA, TestDb, order, t};

async fn save(
    db: &TestDb,
    connection: &str,
    at: i64,
    erp_id: &str,
    number: &str,
    state: OrderState,
) -> anyhow::Result<()> {
    let mut change = Change::new(connection, t(at));
    change.order = Some(order(erp_id, number, state));
    db.store.commit(change).await?;
    Ok(())
}

pub async fn orders_list_filter_and_count_by_state(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    save(db, ACME, 1, "1", "SO-1001", OrderState::Held).await?;
    save(db, ACME, 2, "2", "SO-1002", OrderState::Released).await?;
    save(db, ACME, 3, "3", "SO-2001", OrderState::Released).await?;
    save(db, ACME, 4, "4", "WEB-17", OrderState::Pushed).await?;
    save(db, BETA, 5, "1", "SO-1001", OrderState::Held).await?;

    let ids = |orders: Vec<shipledger_store::OrderRecord>| {
        orders.into_iter().map(|o| o.erp_id).collect::<Vec<_>>()
    };
    let acme = || OrderFilter {
        connection: Some(ACME.into()),
        ..Default::default()
    };

    // Newest first.
    assert_eq!(ids(store.list_orders(acme()).await?), ["4", "3", "2", "1"]);
    assert_eq!(store.list_orders(OrderFilter::default()).await?.len(), 5);
    let released = store
        .list_orders(OrderFilter {
            state: Some(OrderState::Released),
            ..acme()
        })
        .await?;
    assert_eq!(ids(released), ["3", "2"]);
    let so_10 = store
        .list_orders(OrderFilter {
            number_prefix: Some("SO-10".into()),
            ..acme()
        })
        .await?;
    assert_eq!(ids(so_10), ["2", "1"]);
    // The prefix is literal, not a pattern.
    let pattern = store
        .list_orders(OrderFilter {
            number_prefix: Some("SO-_0%".into()),
            ..acme()
        })
        .await?;
    assert!(pattern.is_empty());
    let page = store
        .list_orders(OrderFilter {
            limit: 2,
            offset: 1,
            ..acme()
        })
        .await?;
    assert_eq!(ids(page), ["3", "2"]);

    // A merged-away order is found by the orderId ShipStation gave it.
    let mut change = Change::new(ACME, t(6));
    let mut pushed = order("2", "SO-1002", OrderState::Released);
    pushed.ss_order_id = Some(4_400_017);
    change.order = Some(pushed);
    store.commit(change).await?;
    let by_ss = |id| OrderFilter { ss_order_id: Some(id), ..acme() };
    assert_eq!(ids(store.list_orders(by_ss(4_400_017)).await?), ["2"]);
    assert!(store.list_orders(by_ss(4_400_018)).await?.is_empty());

    let counts = store.count_orders_by_state(ACME).await?;
    assert_eq!(
        counts,
        [
            (OrderState::Held, 1),
            (OrderState::Released, 2),
            (OrderState::Pushed, 1)
        ]
    );
    assert_eq!(store.count_orders_by_state("nobody").await?, []);
    Ok(())
}

pub async fn an_order_is_found_by_its_shipstation_order_key(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    save(db, ACME, 1, "1001", "SO-1001", OrderState::Pushed).await?;
    save(db, BETA, 1, "1001", "SO-1001", OrderState::Held).await?;

    let found = store
        .get_order_by_key(ACME, "key-1001")
        .await?
        .expect("found by key");
    assert_eq!(
        (
            found.connection.as_str(),
            found.erp_id.as_str(),
            found.state
        ),
        (ACME, "1001", OrderState::Pushed)
    );
    assert_eq!(
        store
            .get_order_by_key(BETA, "key-1001")
            .await?
            .unwrap()
            .state,
        OrderState::Held
    );
    assert_eq!(store.get_order_by_key(ACME, "key-9999").await?, None);
    assert_eq!(store.get_order(ACME, "9999").await?, None);
    assert!(store.order_lines(ACME, "9999").await?.is_empty());
    Ok(())
}
