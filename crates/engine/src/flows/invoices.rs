//! Carrier invoices imported (`shipledger costs import-invoice`): what the carrier
//! billed per parcel is matched to its label by tracking number, and the ledger is
//! brought to it with invoice adjustments, in one change (DESIGN §7).
//!
//! - **Once.** An invoice is imported once per connection and carrier. The same
//!   content again (the same file, or another export of the same invoice) records
//!   nothing; other content under a number already imported is refused whole, with
//!   nothing of the file written ([`StoreError::InvoiceAlreadyImported`]).
//! - **Matched** by tracking number to the connection's label of that carrier (a
//!   merged label's primary shipment, which carries the cost). Every charge the invoice
//!   bills for the label becomes an adjustment of that charge: what every invoice
//!   imported for the label billed, less what the ledger has
//!   ([`plan_adjustments`]). Adjustments are dated by the invoice and posted in the
//!   next batch of the invoice date's window, to the label's carrier accounts.
//! - **Unmatched** charges are kept, with a finance exception per parcel
//!   (`invoice_charge_unmatched`). Importing the invoice again once its label is
//!   known matches them then, and closes the exception.
//! - **Variance**: label cost against what was invoiced, per label, over
//!   `policy.cost_variance_pct` and `policy.cost_variance_floor`
//!   (`invoice_cost_variance`, with the figures).
//! - **Not billed**: the carrier's live labels shipped in the period the invoice
//!   covers (the ship dates of the labels it bills) that no invoice bills are listed.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use serde::Serialize;
use serde_json::json;
use shipledger_core::cost::{Charge, LabelFacts, NewCostEntry, sum_by_currency};
use shipledger_core::exception::ExceptionKind;
use shipledger_core::invoice::{Invoice, InvoiceFile, Variance, plan_adjustments, variance};
use shipledger_core::Money;
use shipledger_store::{
    Change, CostEntryFilter, EventKind, InvoiceChargeFilter, InvoiceChargeRecord, InvoiceMatch, NewCarrierInvoice, NewEvent, NewInvoiceCharge, RecordType,
    ShipmentFilter, ShipmentKind, ShipmentRecord, StoreError,
};

use crate::flows::costs::{self, facts_of};
use crate::{Connection, Engine, EngineError};

/// What one import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub file: String,
    pub carrier: String,
    pub invoices: Vec<InvoiceOutcome>,
    /// The adjustments recorded, in the order planned.
    pub adjustments: Vec<Adjustment>,
    /// Parcels billed that no label of this connection has.
    pub unmatched: Vec<Unmatched>,
    /// Labels whose invoiced cost is far from their label cost.
    pub variances: Vec<LabelVariance>,
    /// The ship dates of the labels this import matched charges to (`None`: it
    /// matched none).
    pub period: Option<(Date, Date)>,
    /// The carrier's live labels shipped in that period that no invoice bills.
    pub not_billed: Vec<NotBilled>,
}

/// One invoice of the file.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceOutcome {
    pub number: String,
    pub date: Date,
    /// `imported`, or `already_imported` (the same content was imported before).
    pub state: &'static str,
    pub charges: usize,
    /// Charges matched to a label by this import.
    pub matched: usize,
    /// Charges still unmatched after it.
    pub unmatched: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Adjustment {
    pub entry_key: String,
    pub shipment_key: String,
    pub charge: String,
    pub amount: Money,
    pub invoice: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unmatched {
    pub invoice: String,
    pub tracking_number: String,
    pub rows: Vec<u64>,
    pub amounts: Vec<Money>,
    /// Why no label matched.
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelVariance {
    pub shipment_key: String,
    pub erp_id: Option<String>,
    pub tracking_number: String,
    #[serde(flatten)]
    pub variance: Variance,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotBilled {
    pub shipment_key: String,
    pub erp_id: Option<String>,
    pub tracking_number: Option<String>,
    pub ship_date: Option<Date>,
}

/// Import `file`'s invoices from `carrier` (ShipStation's carrier code, as the labels
/// carry it) into `conn`: everything in one change, or nothing.
pub async fn import(engine: &Engine, conn: &Connection, carrier: &str, file: &InvoiceFile) -> Result<ImportReport, EngineError> {
    match import_once(engine, conn, carrier, file).await {
        // Another import of the same invoice committed between this one's read and
        // its commit: read again, and it is the same content (nothing to do) or other
        // content (refused as it would have been).
        Err(EngineError::Store(StoreError::InvoiceAlreadyImported { .. } | StoreError::InvoiceMoved { .. })) => import_once(engine, conn, carrier, file).await,
        other => other,
    }
}

/// Charges of one parcel, as matched.
struct Parcel {
    invoice: String,
    date: Date,
    tracking: String,
    lines: Vec<(u64, Charge, Money)>,
}

/// One matched label's ledger as the import goes: the label, its facts, its entries
/// (the adjustments planned so far included) and everything invoiced for it.
struct LabelLedger<'a> {
    label: &'a ShipmentRecord,
    facts: LabelFacts,
    entries: Vec<NewCostEntry>,
    billed: Vec<(Charge, Money)>,
}

async fn import_once(engine: &Engine, conn: &Connection, carrier: &str, file: &InvoiceFile) -> Result<ImportReport, EngineError> {
    let store = &engine.store;
    let now = engine.clock.now();
    let mut report = ImportReport { file: file.file.clone(), carrier: carrier.to_string(), ..Default::default() };
    let mut change = Change::new(&conn.name, now);

    // Which invoices are new, and which were imported before (their unmatched
    // charges are tried again).
    let mut new: Vec<&Invoice> = Vec::new();
    let mut retry: Vec<(usize, InvoiceChargeRecord)> = Vec::new();
    for invoice in &file.invoices {
        match store.get_carrier_invoice(&conn.name, carrier, &invoice.number).await? {
            None => new.push(invoice),
            Some(before) if before.content_sha256 == invoice.content_sha256 => {
                let open = store
                    .list_invoice_charges(InvoiceChargeFilter { connection: Some(conn.name.clone()), invoice_id: Some(before.id), unmatched: true, ..Default::default() })
                    .await?;
                report.invoices.push(InvoiceOutcome { number: invoice.number.clone(), date: invoice.date, state: "already_imported", charges: invoice.lines.len(), matched: 0, unmatched: open.len() });
                let at = report.invoices.len() - 1;
                retry.extend(open.into_iter().map(|c| (at, c)));
            }
            Some(before) => return Err(before.already_imported().into()),
        }
    }

    // Each tracking number's label, read once.
    let mut labels: BTreeMap<String, Result<ShipmentRecord, String>> = BTreeMap::new();
    let wanted: BTreeSet<String> =
        new.iter().flat_map(|i| i.lines.iter().map(|l| l.tracking_number.clone())).chain(retry.iter().map(|(_, c)| c.tracking_number.clone())).collect();
    for tracking in wanted {
        let found = label_of(engine, conn, carrier, &tracking).await?;
        labels.insert(tracking, found);
    }

    // Every parcel's charges, per invoice in the file's order.
    let mut parcels: Vec<Parcel> = Vec::new();
    for invoice in &new {
        let mut by_tracking: BTreeMap<&str, Vec<(u64, Charge, Money)>> = BTreeMap::new();
        for l in &invoice.lines {
            by_tracking.entry(&l.tracking_number).or_default().push((l.row, l.charge.clone(), l.amount));
        }
        let mut charges = Vec::new();
        let (mut matched, mut unmatched) = (0, 0);
        for l in &invoice.lines {
            let key = labels.get(&l.tracking_number).and_then(|r| r.as_ref().ok()).map(|s| s.shipment_key.clone());
            if key.is_some() { matched += 1 } else { unmatched += 1 }
            charges.push(NewInvoiceCharge {
                row: l.row,
                tracking_number: l.tracking_number.clone(),
                charge_type: l.charge_type.clone(),
                charge: l.charge.clone(),
                amount: l.amount,
                shipment_key: key,
            });
        }
        change.carrier_invoices.push(NewCarrierInvoice {
            carrier: carrier.to_string(),
            number: invoice.number.clone(),
            date: invoice.date,
            file_name: file.file.clone(),
            content_sha256: invoice.content_sha256.clone(),
            charges,
        });
        change.events.push(NewEvent::new(
            RecordType::CarrierInvoice,
            format!("{carrier}:{}", invoice.number),
            EventKind::InvoiceImported,
            json!({"file": file.file, "date": invoice.date.to_string(), "charges": invoice.lines.len(), "matched": matched, "unmatched": unmatched}),
        ));
        report.invoices.push(InvoiceOutcome { number: invoice.number.clone(), date: invoice.date, state: "imported", charges: invoice.lines.len(), matched, unmatched });
        parcels.extend(by_tracking.into_iter().map(|(tracking, lines)| Parcel { invoice: invoice.number.clone(), date: invoice.date, tracking: tracking.to_string(), lines }));
    }
    let mut retried: BTreeMap<(usize, String), Vec<(u64, Charge, Money)>> = BTreeMap::new();
    for (at, c) in &retry {
        if let Some(Ok(label)) = labels.get(&c.tracking_number) {
            change.invoice_matches.push(InvoiceMatch { charge_id: c.id, shipment_key: label.shipment_key.clone() });
            report.invoices[*at].matched += 1;
            report.invoices[*at].unmatched -= 1;
        }
        retried.entry((*at, c.tracking_number.clone())).or_default().push((c.row, c.charge.clone(), c.amount));
    }
    for ((at, tracking), lines) in retried {
        let invoice = &report.invoices[at];
        parcels.push(Parcel { invoice: invoice.number.clone(), date: invoice.date, tracking, lines });
    }

    // Per label: the adjustments of each invoice in turn, and the variance after.
    let mut ledgers: BTreeMap<String, LabelLedger<'_>> = BTreeMap::new();
    let mut billed_dates: Vec<Date> = Vec::new();
    for parcel in &parcels {
        let label = match labels.get(&parcel.tracking) {
            Some(Ok(label)) => label,
            Some(Err(why)) => {
                report.unmatched.push(Unmatched {
                    invoice: parcel.invoice.clone(),
                    tracking_number: parcel.tracking.clone(),
                    rows: parcel.lines.iter().map(|l| l.0).collect(),
                    amounts: sum_by_currency(parcel.lines.iter().map(|l| l.2)),
                    why: why.clone(),
                });
                continue;
            }
            None => continue,
        };
        if let Some(d) = label.ship_date {
            billed_dates.push(d);
        }
        let key = label.shipment_key.clone();
        if !ledgers.contains_key(&key) {
            let entries: Vec<NewCostEntry> = store
                .list_cost_entries(CostEntryFilter { connection: Some(conn.name.clone()), shipment_key: Some(key.clone()), ..Default::default() })
                .await?
                .into_iter()
                .map(|e| e.entry)
                .collect();
            let facts = entries.first().map(|e| e.label.clone()).unwrap_or_else(|| facts_of(label));
            let billed: Vec<(Charge, Money)> = store
                .list_invoice_charges(InvoiceChargeFilter { connection: Some(conn.name.clone()), shipment_key: Some(key.clone()), ..Default::default() })
                .await?
                .into_iter()
                .map(|c| (c.charge, c.amount))
                .collect();
            ledgers.insert(key.clone(), LabelLedger { label, facts, entries, billed });
        }
        let ledger = ledgers.get_mut(&key).expect("just inserted");
        let this: Vec<(Charge, Money)> = parcel.lines.iter().map(|l| (l.1.clone(), l.2)).collect();
        ledger.billed.extend(this.iter().cloned());
        for entry in plan_adjustments(&ledger.facts, &ledger.entries, &ledger.billed, &this, &parcel.invoice, parcel.date) {
            report.adjustments.push(Adjustment {
                entry_key: entry.entry_key.clone(),
                shipment_key: key.clone(),
                charge: entry.charge.code(),
                amount: entry.amount,
                invoice: parcel.invoice.clone(),
            });
            change.events.push(costs::event(&entry));
            ledger.entries.push(entry.clone());
            change.cost_entries.push(entry);
        }
    }
    for ledger in ledgers.values() {
        if let Some(v) = judge_variance(conn, carrier, ledger.label, &ledger.entries, &ledger.billed, &mut change) {
            report.variances.push(v);
        }
    }

    // Unmatched parcels: one finance exception each; matched ones close theirs.
    for u in &report.unmatched {
        change.raise(
            ExceptionKind::InvoiceChargeUnmatched,
            RecordType::InvoiceCharge.as_str(),
            format!("{carrier}:{}:{}", u.invoice, u.tracking_number),
            json!({
                "message": format!("{carrier} invoice {} bills {} for tracking number {}, and {}", u.invoice, money_list(&u.amounts), u.tracking_number, u.why),
                "file": file.file,
                "rows": u.rows,
                "amounts": u.amounts.iter().map(|m| json!({"amount": m.to_decimal().to_string(), "currency": m.currency().code()})).collect::<Vec<_>>(),
                "what_to_do": "if the label is this connection's but not synced yet, import the invoice again once it is; if it was made outside ShipStation or is another brand's, book it by hand and ignore this exception",
            }),
        );
    }
    for parcel in &parcels {
        if matches!(labels.get(&parcel.tracking), Some(Ok(_))) {
            change.clear(ExceptionKind::InvoiceChargeUnmatched, RecordType::InvoiceCharge.as_str(), format!("{carrier}:{}:{}", parcel.invoice, parcel.tracking));
        }
    }

    let touched = !change.carrier_invoices.is_empty() || !change.invoice_matches.is_empty();
    if touched {
        store.commit(change).await?;
    }

    if let (Some(from), Some(to)) = (billed_dates.iter().min().copied(), billed_dates.iter().max().copied()) {
        report.period = Some((from, to));
        report.not_billed = store
            .uninvoiced_labels(&conn.name, carrier, from, to)
            .await?
            .into_iter()
            .map(|s| NotBilled { shipment_key: s.shipment_key.clone(), erp_id: s.erp_id.clone(), tracking_number: s.tracking_number.clone(), ship_date: s.ship_date })
            .collect();
    }
    Ok(report)
}

/// Label cost against everything invoiced for it: `invoice_cost_variance` raised (and
/// returned) past the policy's percentage and floor, else cleared.
fn judge_variance(conn: &Connection, carrier: &str, label: &ShipmentRecord, ledger: &[NewCostEntry], billed: &[(Charge, Money)], change: &mut Change) -> Option<LabelVariance> {
    let key = &label.shipment_key;
    let invoiced = sum_by_currency(billed.iter().map(|b| b.1));
    let mut flagged = None;
    for total in &invoiced {
        let own = sum_by_currency(ledger.iter().filter(|e| e.kind.from_label() && e.amount.currency() == total.currency()).map(|e| e.amount));
        let label_cost = own.first().copied().unwrap_or_else(|| Money::from_minor(0, total.currency()));
        if let Some(v) = variance(label_cost, *total, conn.policy.cost_variance_pct, conn.policy.variance_floor_minor(total.currency())) {
            flagged = Some(v);
            break;
        }
    }
    match flagged {
        Some(v) => {
            change.raise(
                ExceptionKind::InvoiceCostVariance,
                RecordType::Shipment.as_str(),
                key.clone(),
                json!({
                    "message": format!(
                        "{} invoiced {} for label {key} (tracking {}), which cost {}: a difference of {} ({})",
                        carrier, v.invoiced, label.tracking_number.as_deref().unwrap_or("-"), v.label, v.difference,
                        v.percent.map(|p| format!("{p} % of the label cost")).unwrap_or_else(|| "the label cost nothing".into())
                    ),
                    "erp_id": label.erp_id,
                    "tracking_number": label.tracking_number,
                    "label_cost": v.label.to_decimal().to_string(),
                    "invoiced": v.invoiced.to_decimal().to_string(),
                    "difference": v.difference.to_decimal().to_string(),
                    "currency": v.label.currency().code(),
                    "percent": v.percent.map(|p| p.to_string()),
                    "policy_percent": conn.policy.cost_variance_pct,
                    "policy_floor": conn.policy.cost_variance_floor.to_string(),
                }),
            );
            Some(LabelVariance { shipment_key: key.clone(), erp_id: label.erp_id.clone(), tracking_number: label.tracking_number.clone().unwrap_or_default(), variance: v })
        }
        None => {
            change.clear(ExceptionKind::InvoiceCostVariance, RecordType::Shipment.as_str(), key.clone());
            None
        }
    }
}

/// The label of `carrier` with `tracking` on `conn`, or why there is none. Several
/// rows share a tracking number when orders were merged into one label: the one
/// keyed by the label alone carries its cost. A live label is preferred to a voided
/// one that reused the number.
async fn label_of(engine: &Engine, conn: &Connection, carrier: &str, tracking: &str) -> Result<Result<ShipmentRecord, String>, EngineError> {
    let found = engine
        .store
        .list_shipments(ShipmentFilter {
            connection: Some(conn.name.clone()),
            tracking_number: Some(tracking.to_string()),
            kind: Some(ShipmentKind::Label),
            ..Default::default()
        })
        .await?;
    if found.is_empty() {
        return Ok(Err(format!("no label of connection {} has that tracking number", conn.name)));
    }
    let of_carrier: Vec<&ShipmentRecord> = found.iter().filter(|s| s.carrier.eq_ignore_ascii_case(carrier)).collect();
    if of_carrier.is_empty() {
        let others: BTreeSet<&str> = found.iter().map(|s| s.carrier.as_str()).collect();
        return Ok(Err(format!(
            "the label with that tracking number is {}'s, not {carrier}'s (give --carrier as ShipStation's carrier code)",
            others.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let best = of_carrier
        .into_iter()
        .max_by_key(|s| (!s.voided, s.shipment_key == costs::label_key(s.ss_id), s.ss_created_at))
        .expect("not empty");
    Ok(Ok(best.clone()))
}

fn money_list(amounts: &[Money]) -> String {
    amounts.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(" and ")
}
