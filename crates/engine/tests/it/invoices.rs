//! Carrier invoices: UPS bills the month's labels weeks later, with surcharges and an
//! audit. The import matches its charges to labels by tracking number, adjusts the
//! ledger to what was billed (posted in the next batch, balanced, to the penny),
//! raises one finance exception per parcel nobody shipped and per label billed far
//! above its cost, lists the labels it does not bill, and changes nothing when the
//! same invoice comes again, in any layout.

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::json;
use shipledger_core::cost::CostKind;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::invoice::{Mapping, read};
use shipledger_core::{Currency, Money};
use shipledger_engine::flows::{invoices, journals};
use shipledger_store::{CostEntryFilter, ExceptionFilter, ExceptionRecord, ExceptionState};

use crate::helpers::{World, paid_order};
use shipledger_engine::flows::reconcile::{self, Quiet, ReconcileOptions};
use crate::journals::Ledger;

/// A label of `cost` USD for a pushed order, with the given tracking number, shipped today.
async fn label(w: &World, erp_id: &str, tracking: &str, cost: &str) -> String {
    w.erp.put(paid_order(erp_id));
    w.settle().await;
    let id = w.store.get_order("acme-uk", erp_id).await.unwrap().unwrap().ss_order_id.expect("pushed");
    let made = w
        .control(
            &format!("/orders/{id}/labels"),
            json!({"carrierCode": "ups", "serviceCode": "ups_ground", "shipmentCost": cost.parse::<f64>().unwrap(), "trackingNumber": tracking, "shipDate": today().to_string()}),
        )
        .await;
    format!("label:{}", made["shipment"]["shipmentId"].as_i64().unwrap())
}

fn today() -> Date {
    jiff::Timestamp::now().to_zoned(TimeZone::UTC).date()
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::USD)
}

async fn live(w: &World, kind: ExceptionKind) -> Vec<ExceptionRecord> {
    let filter = ExceptionFilter { connection: Some("acme-uk".into()), kind: Some(kind), state: Some(ExceptionState::Open), ..Default::default() };
    w.store.list_exceptions(filter).await.unwrap()
}

async fn adjustments(w: &World) -> Vec<(String, i64)> {
    let all = w.store.list_cost_entries(CostEntryFilter { connection: Some("acme-uk".into()), ..Default::default() }).await.unwrap();
    let mut got: Vec<(String, i64)> = all.iter().filter(|e| e.kind == CostKind::InvoiceAdjustment).map(|e| (e.entry_key.clone(), e.amount.minor())).collect();
    got.sort();
    got
}

fn normalised(name: &str, text: &str) -> Result<shipledger_core::invoice::InvoiceFile, shipledger_core::invoice::InvoiceFileError> {
    read(name, text.as_bytes(), &Mapping::normalised(), None)
}

async fn import(w: &World, file: &shipledger_core::invoice::InvoiceFile) -> invoices::ImportReport {
    invoices::import(&w.engine, &w.engine.connections[0], "ups", file).await.unwrap()
}

/// What the store holds that an import could change: entries, invoice charges,
/// exceptions (with their occurrence counts) and the connection's events.
async fn footprint(w: &World) -> (usize, usize, Vec<(String, String, i64)>, usize) {
    let entries = w.store.list_cost_entries(CostEntryFilter { connection: Some("acme-uk".into()), ..Default::default() }).await.unwrap().len();
    let charges = w.store.list_invoice_charges(shipledger_store::InvoiceChargeFilter { connection: Some("acme-uk".into()), ..Default::default() }).await.unwrap().len();
    let exceptions = w
        .store
        .list_exceptions(ExceptionFilter { connection: Some("acme-uk".into()), ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind.code().to_string(), e.record_id, e.occurrences as i64))
        .collect();
    let events = w.store.timeline("acme-uk", "carrier_invoice", "ups:INV-1001").await.unwrap().len();
    (entries, charges, exceptions, events)
}

crate::stories! {
    async fn a_ups_invoice_adjusts_the_ledger_to_what_was_billed_posts_it_in_the_next_batch_and_changes_nothing_the_second_time(w: World) {
        let a = label(&w, "SO-701", "1ZA", "10.00").await;
        let b = label(&w, "SO-702", "1ZB", "8.00").await;
        let c = label(&w, "SO-703", "1ZC", "5.00").await;
        let d = label(&w, "SO-704", "1ZD", "6.00").await;
        w.settle().await;
        let ledger = Ledger::on(&mut w).await;
        let day = |n: i64| today().checked_add(jiff::Span::new().days(n)).unwrap();
        ledger.write_rates(&[(day(-1), "1.0800", "0.8600"), (day(0), "1.0800", "0.8600"), (day(1), "1.0800", "0.8600")]);
        // The labels' own journal first: today's window is posted before the invoice comes.
        let first = journals::post_now(&w.engine, &w.engine.connections[0], Some(day(0))).await.unwrap().1;
        assert_eq!(first.posted.len(), 1, "{first:?}");

        let header = "tracking_number,invoice_number,invoice_date,charge_type,amount,currency\n";
        let rows = [
            format!("1ZA,INV-1001,{},Transportation,9.50,USD", day(0)),
            format!("1ZA,INV-1001,{},Fuel Surcharge,1.20,USD", day(0)),
            format!("1ZB,INV-1001,{},Transportation,8.00,USD", day(0)),
            format!("1ZC,INV-1001,{},Transportation,12.00,USD", day(0)),
            format!("1ZNOBODY,INV-1001,{},Transportation,6.10,USD", day(0)),
        ];
        // A bad row stops the file, named by row and field, and nothing is written.
        let mut bad = rows.clone();
        bad[3] = format!("1ZC,INV-1001,{},Transportation,12.0O,USD", day(0));
        let e = normalised("ups-november.csv", &format!("{header}{}\n", bad.join("\n"))).unwrap_err();
        assert_eq!((e.file.as_str(), e.row, e.field.as_deref()), ("ups-november.csv", Some(5), Some("amount")), "{e}");
        assert!(w.store.list_carrier_invoices(Some("acme-uk")).await.unwrap().is_empty());
        assert!(adjustments(&w).await.is_empty());

        // Fixed, it imports.
        let file = normalised("ups-november.csv", &format!("{header}{}\n", rows.join("\n"))).unwrap();
        let report = import(&w, &file).await;
        let inv = &report.invoices[0];
        assert_eq!((inv.state, inv.charges, inv.matched, inv.unmatched), ("imported", 5, 4, 1), "{report:#?}");
        assert_eq!(
            adjustments(&w).await,
            vec![
                (format!("{a}/other:fuel_surcharge/invoice:INV-1001:USD"), 120),
                (format!("{a}/postage/invoice:INV-1001:USD"), -50),
                (format!("{c}/postage/invoice:INV-1001:USD"), 700),
            ],
            "invoice minus label per charge; the label billed as it cost adjusts nothing"
        );
        let unmatched = live(&w, ExceptionKind::InvoiceChargeUnmatched).await;
        assert_eq!(unmatched.len(), 1, "{unmatched:#?}");
        assert_eq!((unmatched[0].owner, unmatched[0].record_id.as_str()), (Owner::Finance, "ups:INV-1001:1ZNOBODY"));
        assert_eq!(unmatched[0].detail["rows"], json!([6]));
        let variance = live(&w, ExceptionKind::InvoiceCostVariance).await;
        assert_eq!(variance.len(), 1, "only the label billed 140 % over its cost: {variance:#?}");
        assert_eq!((variance[0].owner, variance[0].record_id.as_str()), (Owner::Finance, c.as_str()));
        assert_eq!((variance[0].detail["label_cost"].as_str(), variance[0].detail["invoiced"].as_str()), (Some("5.00"), Some("12.00")));
        assert_eq!(variance[0].detail["percent"], json!("140.00"));
        assert!(!report.variances.iter().any(|v| v.shipment_key == b), "billed as it cost: no variance");
        let not_billed: Vec<&str> = report.not_billed.iter().map(|n| n.shipment_key.as_str()).collect();
        assert_eq!(not_billed, vec![d.as_str()], "the label shipped in the invoice's period that it does not bill");
        assert_eq!(report.period, Some((day(0), day(0))));

        // Posted in the next batch: today's window is posted, so tomorrow's takes them.
        let second = journals::post_now(&w.engine, &w.engine.connections[0], Some(day(1))).await.unwrap().1;
        assert_eq!(second.posted.len(), 1, "{second:?}");
        let members: BTreeSet<String> = w.store.cost_batch_members("acme-uk", &second.posted[0]).await.unwrap().into_iter().map(|m| m.entry_key).collect();
        let keys: BTreeSet<String> = adjustments(&w).await.into_iter().map(|(k, _)| k).collect();
        assert_eq!(members, keys, "the next batch holds exactly the adjustments");
        let journal = ledger.journals().into_iter().find(|j| j.key == second.posted[0]).expect("posted to the ERP");
        let debit: i64 = journal.lines.iter().map(|l| l.debit.minor()).sum();
        let credit: i64 = journal.lines.iter().map(|l| l.credit.minor()).sum();
        assert_eq!(debit, credit, "balanced");
        let mut base = 0;
        for key in &keys {
            base += w.store.get_cost_conversion("acme-uk", key).await.unwrap().expect("converted").conversion.base.minor();
        }
        // Net 7.70 USD at 0.86 / 1.08 GBP per USD, entry by entry: 0.96 − 0.40 + 5.57.
        assert_eq!(base, 96 - 40 + 557);
        let on = |account: &str| journal.lines.iter().filter(|l| l.account == account).map(|l| l.debit.minor() - l.credit.minor()).sum::<i64>();
        assert_eq!((on("5.1.3"), on("2.1.1")), (base, -base), "shipping expense against accrued shipping, by the adjustments converted: {journal:#?}");

        // The same invoice again, from the same file or another export of it: nothing changes.
        let before = footprint(&w).await;
        let again = import(&w, &file).await;
        assert_eq!(again.invoices[0].state, "already_imported");
        assert!(again.adjustments.is_empty(), "{again:#?}");
        assert_eq!(footprint(&w).await, before);
        let reordered: Vec<String> = rows.iter().rev().cloned().collect();
        let other_export = normalised("ups-november-again.csv", &format!("{header}{}\n", reordered.join("\n"))).unwrap();
        assert_eq!(import(&w, &other_export).await.invoices[0].state, "already_imported");
        assert_eq!(footprint(&w).await, before);

        // Other charges under the same number are refused whole.
        let mut changed = rows.clone();
        changed[2] = format!("1ZB,INV-1001,{},Transportation,8.10,USD", day(0));
        let refused = normalised("ups-edited.csv", &format!("{header}{}\n", changed.join("\n"))).unwrap();
        let e = invoices::import(&w.engine, &w.engine.connections[0], "ups", &refused).await.unwrap_err();
        assert!(e.to_string().contains("INV-1001") && e.to_string().contains("ups-november.csv"), "{e}");
        assert_eq!(footprint(&w).await, before);
    }

    async fn a_carriers_own_layout_imports_through_a_mapping_and_a_parcel_unknown_at_first_is_matched_once_its_label_is_known(w: World) {
        let b = label(&w, "SO-712", "1ZB2", "8.00").await;
        w.settle().await;
        let mapping: Mapping = toml::from_str(
            r#"
            date_format = "%m/%d/%Y"
            currency = "USD"
            [columns]
            tracking_number = "Tracking Number"
            invoice_number = "Invoice No"
            invoice_date = "Invoice Date"
            [amounts]
            postage = "Net Freight"
            "Address Correction" = "Address Correction Charge"
            "#,
        )
        .unwrap();
        let date = today().strftime("%m/%d/%Y").to_string();
        let text = format!(
            "Invoice No,Invoice Date,Tracking Number,Net Freight,Address Correction Charge\n\
             INV-2001,{date},1ZB2,8.00,15.00\n\
             INV-2001,{date},1ZLATE,4.00,\n"
        );
        let file = read("ups-export.csv", text.as_bytes(), &mapping, Some("ups.toml")).unwrap();
        let report = import(&w, &file).await;
        assert_eq!(adjustments(&w).await, vec![(format!("{b}/other:address_correction/invoice:INV-2001:USD"), 1500)]);
        assert_eq!(report.variances.len(), 1, "8.00 billed 23.00");
        assert_eq!(report.variances[0].variance.invoiced, usd(2300));
        assert_eq!(live(&w, ExceptionKind::InvoiceChargeUnmatched).await.len(), 1);

        // The parcel's label reaches shipledger after the invoice: importing the
        // invoice again matches it, adjusts it, and closes the exception.
        let late = label(&w, "SO-713", "1ZLATE", "4.00").await;
        w.settle().await;
        let again = import(&w, &file).await;
        assert_eq!((again.invoices[0].state, again.invoices[0].matched, again.invoices[0].unmatched), ("already_imported", 1, 0), "{again:#?}");
        assert!(live(&w, ExceptionKind::InvoiceChargeUnmatched).await.is_empty(), "closed once matched");
        let charges = w.store.list_invoice_charges(shipledger_store::InvoiceChargeFilter { connection: Some("acme-uk".into()), shipment_key: Some(late.clone()), ..Default::default() }).await.unwrap();
        assert_eq!(charges.len(), 1);
        assert!(again.adjustments.is_empty(), "billed as the label cost: nothing to adjust");
        let before = footprint(&w).await;
        import(&w, &file).await;
        assert_eq!(footprint(&w).await, before, "and a third time changes nothing");
    }

    async fn three_labels_at_four_times_their_peers_cost_are_named_for_finance_with_their_reasoning_and_the_hundred_others_are_not(w: World) {
        // 103 ground labels for orders of the same weight: 100 between 7.60 and
        // 8.59, three at 32.00.
        let orders: Vec<String> = (0..103).map(|n| format!("SO-8{n:03}")).collect();
        for id in &orders {
            w.erp.put(paid_order(id));
        }
        w.settle().await;
        let mut keys = Vec::new();
        for (n, erp_id) in orders.iter().enumerate() {
            let id = w.store.get_order("acme-uk", erp_id).await.unwrap().unwrap().ss_order_id.expect("pushed");
            let cents = if n >= 100 { 3_200 } else { 760 + (n as i64 * 37) % 100 };
            let made = w
                .control(&format!("/orders/{id}/labels"), json!({"carrierCode": "ups", "serviceCode": "ups_ground", "shipmentCost": cents as f64 / 100.0}))
                .await;
            keys.push(format!("label:{}", made["shipment"]["shipmentId"].as_i64().unwrap()));
        }
        w.settle().await;
        let report = Box::pin(reconcile::run(&w.engine, &w.engine.connections[0], &ReconcileOptions::default(), &Quiet)).await.unwrap();
        let mut flagged: Vec<&shipledger_core::reconcile::Finding> = report.findings.iter().filter(|f| f.kind == ExceptionKind::LabelCostOutlier).collect();
        flagged.sort_by(|a, b| a.record_id.cmp(&b.record_id));
        let mut want: Vec<&String> = keys[100..].iter().collect();
        want.sort();
        assert_eq!(flagged.iter().map(|f| &f.record_id).collect::<Vec<_>>(), want, "exactly the three: {flagged:#?}");
        let d = &flagged[0].detail;
        assert_eq!((d["peers"].as_u64(), d["cost"].as_str(), d["service"].as_str()), (Some(103), Some("32.00"), Some("ups_ground")));
        assert_ne!(d["weight_band"], json!("unknown"), "the parcel's weight comes from its ERP lines: {d}");
        let median: rust_decimal::Decimal = d["median"].as_str().unwrap().parse().unwrap();
        assert!(median > "7.60".parse().unwrap() && median < "8.60".parse().unwrap(), "{d}");
        assert!(d["mad"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap() > rust_decimal::Decimal::ZERO, "{d}");
        assert!(d["score"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap() > "3.5".parse().unwrap(), "{d}");
        let open = live(&w, ExceptionKind::LabelCostOutlier).await;
        assert_eq!(open.len(), 3);
        assert!(open.iter().all(|e| e.owner == Owner::Finance));
    }
}
