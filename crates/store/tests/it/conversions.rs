//! Conversions of cost entries in the store: recorded once per entry with every
//! field of the [`Conversion`], in the same commit as their events; an entry without
//! one is waiting for a rate; a second worker converting the same entry writes
//! nothing; and nothing, not even a hand-written statement, changes or deletes one.

use rust_decimal::Decimal;
use shipledger_core::cost::{Charge, CostKind, CostSource, LabelFacts, NewCostEntry, entry_key};
use shipledger_core::fx::{Conversion, RateSource};
use shipledger_core::{Currency, Money, Rounding};
use shipledger_store::{Change, CostEntryFilter, EventKind, NewCostConversion, NewEvent, StoreError};

use crate::harness::{ACME, BETA, TestDb, t};

fn entry(shipment_id: i64, minor: i64, currency: Currency) -> NewCostEntry {
    let label = LabelFacts {
        shipment_key: format!("label:{shipment_id}"),
        erp_id: Some("SO-1".into()),
        ss_order_id: shipment_id + 1000,
        carrier: "ups".into(),
        service: None,
        ship_date: Some(jiff::civil::date(2026, 11, 27)),
        label_created_at: t(100 + shipment_id),
    };
    NewCostEntry {
        entry_key: entry_key(&label.shipment_key, &Charge::Postage, 0),
        kind: CostKind::Label,
        charge: Charge::Postage,
        revision: 0,
        amount: Money::from_minor(minor, currency),
        occurred_at: label.label_created_at,
        label,
        source: CostSource::ShipstationV1,
        reverses_key: None,
    }
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// 1 GBP = 1.2513 USD (Tryton's way): `original × 1 ÷ 1.2513`.
fn usd_to_gbp(e: &NewCostEntry) -> NewCostConversion {
    let conversion = Conversion::make(
        &e.entry_key,
        e.amount,
        Currency::GBP,
        d("1.2513"),
        Decimal::ONE,
        jiff::civil::date(2026, 11, 26),
        jiff::civil::date(2026, 11, 27),
        RateSource::Erp,
    )
    .unwrap();
    NewCostConversion { conversion, source_detail: "tryton:currency.currency.rate:3+1".into() }
}

async fn record(db: &TestDb, entries: &[NewCostEntry]) -> anyhow::Result<()> {
    let mut change = Change::new(ACME, t(150));
    change.cost_entries.extend(entries.iter().cloned());
    db.store.commit(change).await?;
    Ok(())
}

fn converting(c: &NewCostConversion, at: i64) -> Change {
    let mut change = Change::new(ACME, t(at));
    change.events.push(NewEvent::shipment("label:8101", EventKind::CostConverted, serde_json::json!({"entry_key": c.conversion.entry_key})));
    change.cost_conversions.push(c.clone());
    change
}

pub async fn an_entry_converts_once_with_every_field_and_until_then_it_waits(db: &TestDb) -> anyhow::Result<()> {
    let (usd, eur) = (entry(8101, 1234, Currency::USD), entry(8102, 999, Currency::EUR));
    record(db, &[usd.clone(), eur.clone()]).await?;
    let waiting = db.store.unconverted_cost_entries(ACME, None, 0).await?;
    assert_eq!(waiting.iter().map(|e| e.entry_key.as_str()).collect::<Vec<_>>(), vec![usd.entry_key.as_str(), eur.entry_key.as_str()]);
    assert_eq!(db.store.get_cost_conversion(ACME, &usd.entry_key).await?, None, "not converted yet");

    let conv = usd_to_gbp(&usd);
    let outcome = db.store.commit(converting(&conv, 200)).await?;
    assert_eq!(outcome.cost_conversions_recorded, vec![usd.entry_key.clone()]);
    let got = db.store.get_cost_conversion(ACME, &usd.entry_key).await?.expect("converted");
    assert_eq!(got.conversion, conv.conversion, "every field reads back as written, the exact quotient too");
    // 12.34 USD ÷ 1.2513 = 9.86174...: 9.86 GBP, recomputed here in integers from the
    // stored original (minor units × 10 000 ÷ the rate's 12 513, truncated: the
    // remainder is below half a penny, so half-even rounding keeps it).
    let original = got.conversion.original.minor();
    assert_eq!(original, 1234);
    assert!((original * 10_000) % 12_513 < 12_513 / 2);
    assert_eq!(got.conversion.base.minor(), original * 10_000 / 12_513);
    assert_eq!(got.conversion.base, Money::from_minor(986, Currency::GBP));
    assert_eq!(got.conversion.rounding, Rounding::HalfEven);
    assert_eq!(got.source_detail, "tryton:currency.currency.rate:3+1");
    assert_eq!(got.converted_at, t(200));
    let recorded = db.store.get_cost_entry_by_key(ACME, &usd.entry_key).await?.unwrap();
    assert_eq!(got.entry_id, recorded.id);

    let waiting = db.store.unconverted_cost_entries(ACME, None, 0).await?;
    assert_eq!(waiting.iter().map(|e| e.entry_key.clone()).collect::<Vec<_>>(), vec![eur.entry_key.clone()], "the EUR entry still waits");
    assert!(db.store.unconverted_cost_entries(ACME, Some(waiting[0].id), 0).await?.is_empty(), "pages go on after the last id");
    let listed = db.store.list_cost_conversions(CostEntryFilter { connection: Some(ACME.into()), ..Default::default() }).await?;
    assert_eq!(listed, vec![got]);
    assert!(db.store.list_cost_conversions(CostEntryFilter { connection: Some(BETA.into()), ..Default::default() }).await?.is_empty());
    let events = db.store.timeline(ACME, "shipment", "label:8101").await?;
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::CostConverted).count(), 1, "the event came with the conversion");
    Ok(())
}

pub async fn two_converters_racing_for_one_entry_record_one_conversion(db: &TestDb) -> anyhow::Result<()> {
    let usd = entry(8101, 640, Currency::USD);
    record(db, std::slice::from_ref(&usd)).await?;
    let conv = usd_to_gbp(&usd);
    let (a, b) = tokio::join!(db.store.commit(converting(&conv, 200)), db.store.commit(converting(&conv, 201)));
    let won = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{a:?} {b:?}");
    let lost = if a.is_err() { a } else { b };
    assert!(matches!(lost, Err(StoreError::CostAlreadyConverted { ref entry_key, .. }) if *entry_key == usd.entry_key), "{lost:?}");
    let events = db.store.timeline(ACME, "shipment", "label:8101").await?;
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::CostConverted).count(), 1, "the loser's event was not written");
    assert_eq!(db.store.list_cost_conversions(CostEntryFilter { connection: Some(ACME.into()), ..Default::default() }).await?.len(), 1);
    Ok(())
}

pub async fn a_conversion_of_an_unknown_or_different_entry_writes_nothing(db: &TestDb) -> anyhow::Result<()> {
    let usd = entry(8101, 640, Currency::USD);
    assert!(db.store.commit(converting(&usd_to_gbp(&usd), 200)).await.is_err(), "no such entry yet");
    record(db, std::slice::from_ref(&usd)).await?;
    let other = entry(8101, 641, Currency::USD);
    let err = db.store.commit(converting(&usd_to_gbp(&other), 200)).await.unwrap_err();
    assert!(err.to_string().contains(&usd.entry_key), "{err}");
    assert_eq!(db.store.get_cost_conversion(ACME, &usd.entry_key).await?, None);
    assert!(db.store.timeline(ACME, "shipment", "label:8101").await?.iter().all(|e| e.kind != EventKind::CostConverted));
    Ok(())
}

pub async fn nothing_changes_or_deletes_a_conversion(db: &TestDb) -> anyhow::Result<()> {
    let usd = entry(8101, 640, Currency::USD);
    record(db, std::slice::from_ref(&usd)).await?;
    db.store.commit(converting(&usd_to_gbp(&usd), 200)).await?;
    let update = db.execute("UPDATE cost_conversions SET base_minor = 1, rate_from = '2' WHERE entry_key = 'label:8101/postage/0'").await;
    assert!(update.is_err(), "an UPDATE is refused by the database itself");
    let delete = db.execute("DELETE FROM cost_conversions WHERE entry_key = 'label:8101/postage/0'").await;
    assert!(delete.is_err(), "a DELETE is refused too");
    let kept = db.store.get_cost_conversion(ACME, &usd.entry_key).await?.expect("still there");
    assert_eq!((kept.conversion.base, kept.conversion.rate_from), (Money::from_minor(511, Currency::GBP), d("1.2513")));
    Ok(())
}
