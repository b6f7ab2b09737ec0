//! The close report: one connection's month as finance closes it, read from the
//! store (nothing is written, nothing external is called but the ERP's time zone and
//! base currency when the configuration does not name them).
//!
//! - what shipped: the labels made in the period, voided or live, and what became of
//!   them in the ERP;
//! - what it cost: every cost entry placed in the period (a label's by its creation,
//!   a carrier invoice's adjustment by its invoice date, company time), by carrier and
//!   currency, with the rates that converted it;
//! - what is posted: the period's journals as the ERP holds them, the entries posted,
//!   waiting for a rate, not yet posted, carried into the period from an earlier one
//!   or out of it into a later one;
//! - the carrier invoices dated in the period: their adjustments, the charges nobody
//!   can place, the labels they do not bill;
//! - the shipping margin of the period's orders (free shipping reported, not raised);
//! - the reconciler's drift (shipped not fulfilled, fulfilled without a label,
//!   shipped not invoiced, invoiced not shipped) and every live exception by owner and
//!   age;
//! - a verdict: ready to close, or each blocker with its record and owner
//!   ([`shipledger_core::close`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;
use shipledger_core::close::{AgeBand, Blocker, BlockerKind, Period, settle_blockers, verdict_text};
use shipledger_core::cost::{CostEntry, CostKind, sum_by_currency};
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::journal::{JournalLine, Window, company_date};
use shipledger_core::{Currency, Money};
use shipledger_store::{
    BatchState, CostBatchFilter, CostBatchRecord, ExceptionFilter, ExceptionRecord, InvoiceChargeFilter, ReconcileRunFilter, ReconcileState,
    ShipmentCursor, ShipmentFilter, ShipmentKind, ShipmentRecord,
};

use crate::{Connection, Engine, EngineError};

/// The reconciler's drift kinds the report lists on their own.
pub const DRIFT_KINDS: [ExceptionKind; 4] =
    [ExceptionKind::ShippedNotFulfilled, ExceptionKind::FulfilledWithoutLabel, ExceptionKind::ShippedNotInvoiced, ExceptionKind::InvoicedNotShipped];

#[derive(Debug, Clone, Serialize)]
pub struct CloseReport {
    pub connection: String,
    pub period: String,
    pub from: Date,
    pub to: Date,
    pub timezone: String,
    pub base_currency: Option<String>,
    pub generated_at: Timestamp,
    /// The period has ended (company time).
    pub ended: bool,
    pub labels: Labels,
    pub costs: Vec<CostGroup>,
    pub journals: Vec<JournalSummary>,
    pub posting: Posting,
    pub invoices: Invoices,
    pub margin: MarginSummary,
    pub reconciler: Reconciler,
    pub exceptions: Vec<OwnerAges>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Labels {
    /// Labels ShipStation made in the period.
    pub made: u64,
    pub voided: u64,
    pub live: u64,
    /// ERP orders they ship.
    pub orders: u64,
    /// Live labels by what the ERP holds for them: `seen` (nothing written yet),
    /// `packed`, `completed`.
    pub by_state: BTreeMap<String, u64>,
    /// Orders marked shipped in ShipStation without a label, in the period.
    pub fulfillments: u64,
    pub by_carrier: Vec<CarrierLabels>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CarrierLabels {
    pub carrier: String,
    pub made: u64,
    pub voided: u64,
}

/// One carrier × currency of the period's cost entries.
#[derive(Debug, Clone, Serialize)]
pub struct CostGroup {
    pub carrier: String,
    pub currency: String,
    pub entries: u64,
    /// The net in the entries' own currency.
    pub amount: Money,
    /// Of it, what labels showed (first costs, revisions, void reversals).
    pub label: Money,
    /// Of it, what carrier invoices adjusted.
    pub invoice_adjustments: Money,
    /// The converted entries' net in the base currency.
    pub base: Option<Money>,
    /// Entries with no rate yet (not in `base`).
    pub waiting_for_rate: u64,
    pub rates: Vec<RateUsed>,
}

/// The rates that converted entries, as the ERP or the rate source gave them.
#[derive(Debug, Clone, Serialize)]
pub struct RateUsed {
    pub rate_from: String,
    pub rate_to: String,
    pub rate_date: Date,
    pub source: String,
    pub entries: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalSummary {
    pub batch_key: String,
    pub window: String,
    pub posting_date: Date,
    pub state: String,
    pub erp_move_id: Option<String>,
    /// The journal's debit total, as posted.
    pub total: Money,
    pub entries: u32,
    pub carried_over: u32,
    pub lines: Vec<JournalLine>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Posting {
    /// The net posted in the period's journals, in the base currency: the expense
    /// they booked (a line group whose reversals outweigh its costs counts negative).
    pub posted: Option<Money>,
    /// The journals' debit totals as the ERP shows them (a group netting negative is
    /// on the credit side of the expense, so it adds to the debits too).
    pub debit_total: Option<Money>,
    pub posted_entries: u64,
    /// The period's journals' net by carrier and original currency: the journals'
    /// lines, entry by entry.
    pub posted_by_carrier: Vec<PostedGroup>,
    pub waiting_for_rate: Vec<EntryRef>,
    /// Entries of the period converted but in no posted journal.
    pub not_posted: Vec<EntryRef>,
    /// Entries of earlier periods in this period's journals (their own period was
    /// closed or posted when they came).
    pub carried_in: Vec<EntryRef>,
    /// Entries of this period in a later period's journal, posted or planned.
    pub carried_out: Vec<EntryRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PostedGroup {
    pub carrier: String,
    pub currency: String,
    pub entries: u64,
    pub amount: Money,
    pub base: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntryRef {
    pub entry_key: String,
    pub erp_id: Option<String>,
    pub carrier: String,
    pub amount: Money,
    /// The window of its own date.
    pub own_window: String,
    /// The batch it is in, if any.
    pub batch_key: Option<String>,
    pub batch_state: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Invoices {
    pub invoices: Vec<InvoiceSummary>,
    /// The period's invoice adjustments by carrier and currency.
    pub adjustments: Vec<AdjustmentGroup>,
    pub unmatched: Vec<UnmatchedCharge>,
    /// Live labels shipped in the period, of a carrier that invoiced it, that no
    /// imported invoice bills.
    pub not_billed: Vec<NotBilled>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceSummary {
    pub carrier: String,
    pub number: String,
    pub date: Date,
    pub file_name: String,
    pub charges: u64,
    pub unmatched: u64,
    pub billed: Vec<Money>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdjustmentGroup {
    pub carrier: String,
    pub currency: String,
    pub entries: u64,
    pub amount: Money,
    pub base: Option<Money>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnmatchedCharge {
    pub carrier: String,
    pub invoice_number: String,
    pub invoice_date: Date,
    pub row: u64,
    pub tracking_number: String,
    pub charge_type: String,
    pub amount: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotBilled {
    pub shipment_key: String,
    pub carrier: String,
    pub tracking_number: Option<String>,
    pub ship_date: Option<Date>,
    pub erp_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MarginSummary {
    /// Orders with a label in the period.
    pub orders: u64,
    /// Per currency compared in: what orders charged, what shipping them cost, and the margin.
    pub by_currency: Vec<MarginGroup>,
    pub free_shipping_orders: u64,
    /// What shipping the free-shipping orders cost, per currency (those whose cost
    /// can be put in one currency; the rest are in `not_comparable` too).
    pub free_shipping_cost: Vec<Money>,
    /// Orders that charged shipping and cost more, over the variance policy.
    pub undercharged: Vec<OrderMarginRow>,
    /// Orders whose cost cannot be put in their charge's currency yet.
    pub not_comparable: Vec<OrderMarginRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MarginGroup {
    pub currency: String,
    pub orders: u64,
    pub charged: Money,
    pub cost: Money,
    pub margin: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderMarginRow {
    pub erp_id: String,
    pub number: String,
    pub charged: Option<Money>,
    /// The charge in the currency of `cost` (converted at a rate the ledger holds).
    pub charged_compared: Option<Money>,
    pub cost: Option<Money>,
    pub margin: Option<Money>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciler {
    /// The newest finished run.
    pub last_run: Option<RunRef>,
    pub shipped_not_fulfilled: Vec<ExceptionRef>,
    pub fulfilled_without_label: Vec<ExceptionRef>,
    pub shipped_not_invoiced: Vec<ExceptionRef>,
    pub invoiced_not_shipped: Vec<ExceptionRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    pub id: i64,
    pub mode: String,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExceptionRef {
    pub id: i64,
    pub kind: String,
    pub owner: Owner,
    pub record: String,
    pub first_seen: Timestamp,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OwnerAges {
    pub owner: Owner,
    pub total: u64,
    /// `under_1_day`, `1_to_3_days`, `3_to_7_days`, `over_7_days`.
    pub by_age: BTreeMap<AgeBand, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub ready: bool,
    pub summary: String,
    pub blockers: Vec<Blocker>,
}

fn money_sum(currency: Currency, amounts: impl IntoIterator<Item = Money>) -> Money {
    sum_by_currency(amounts).into_iter().find(|m| m.currency() == currency).unwrap_or(Money::zero(currency))
}

/// The close report of `conn` for `period`, as of the engine's clock.
pub async fn report(engine: &Engine, conn: &Connection, period: Period) -> Result<CloseReport, EngineError> {
    let store = engine.store.as_ref();
    let now = engine.clock.now();
    let tz = conn.policy.company_timezone(conn.erp.as_ref()).await?;
    let (start, end) = (period.start(&tz), period.end(&tz));
    let ended = period.has_ended(now, &tz);
    let in_period = |at: Timestamp| period.contains(company_date(at, &tz));
    let window_of = |e: &CostEntry| Window::of_label(e.posting_at(), &tz, conn.policy.cost_batch);

    // Entries: every one whose label is at most a year older than the period (an
    // invoice adjustment is dated by its invoice, weeks after its label), up to the
    // period's end (an entry of the period has its label before it ends).
    let year_before = start.checked_sub(jiff::SignedDuration::from_hours(24 * 366)).unwrap_or(Timestamp::MIN);
    let (entries, conversions) = crate::margins::entries_with_conversions(store, &conn.name, Some(year_before), Some(end)).await?;
    let by_key: HashMap<&str, &CostEntry> = entries.iter().map(|e| (e.entry_key.as_str(), e)).collect();
    let own: Vec<&CostEntry> = entries.iter().filter(|e| in_period(e.posting_at())).collect();
    let base_currency = match conversions.values().next() {
        Some(c) => Some(c.conversion.base.currency()),
        None => conn.erp.base_currency().await.ok(),
    };

    // Batches whose window ends in or after the period, with their members.
    // (Entries are carried at most a year past their own window.)
    let horizon = period.last_day().checked_add(jiff::Span::new().days(366)).unwrap_or(period.last_day());
    let batches =
        store.list_cost_batches(CostBatchFilter { connection: Some(conn.name.clone()), from: Some(period.first_day()), to: Some(horizon), ..Default::default() }).await?;
    let mut placed: HashMap<String, (&CostBatchRecord, Option<Window>)> = HashMap::new();
    let mut members_of: HashMap<&str, Vec<(String, Option<Window>)>> = HashMap::new();
    for b in batches.iter().filter(|b| b.state != BatchState::Withdrawn) {
        let members = store.cost_batch_members(&conn.name, &b.batch_key).await?;
        for m in &members {
            placed.insert(m.entry_key.clone(), (b, m.carried_from));
        }
        members_of.insert(b.batch_key.as_str(), members.into_iter().map(|m| (m.entry_key, m.carried_from)).collect());
    }
    let in_period_batch = |b: &CostBatchRecord| period.contains(b.window.start);

    // ---- what shipped
    let shipments = shipments_in(store, &conn.name, start, end).await?;
    let mut labels = Labels::default();
    let mut carriers: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut orders: BTreeSet<String> = BTreeSet::new();
    for s in &shipments {
        if s.kind == ShipmentKind::Fulfillment {
            labels.fulfillments += 1;
            continue;
        }
        labels.made += 1;
        let c = carriers.entry(s.carrier.clone()).or_default();
        c.0 += 1;
        if s.voided {
            labels.voided += 1;
            c.1 += 1;
            continue;
        }
        labels.live += 1;
        if let Some(id) = &s.erp_id {
            orders.insert(id.clone());
        }
        *labels.by_state.entry(s.state.as_str().into()).or_default() += 1;
    }
    labels.orders = orders.len() as u64;
    labels.by_carrier = carriers.into_iter().map(|(carrier, (made, voided))| CarrierLabels { carrier, made, voided }).collect();

    // ---- what it cost
    let mut groups: BTreeMap<(String, Currency), Vec<&CostEntry>> = BTreeMap::new();
    for e in &own {
        groups.entry((e.label.carrier.clone(), e.amount.currency())).or_default().push(e);
    }
    let costs: Vec<CostGroup> = groups
        .into_iter()
        .map(|((carrier, currency), es)| {
            let converted: Vec<_> = es.iter().filter_map(|e| conversions.get(&e.entry_key)).collect();
            let mut rates: BTreeMap<(String, String, Date, String), u64> = BTreeMap::new();
            for c in &converted {
                let v = &c.conversion;
                *rates.entry((v.rate_from.to_string(), v.rate_to.to_string(), v.rate_date, v.source.code().to_string())).or_default() += 1;
            }
            CostGroup {
                carrier,
                currency: currency.code().into(),
                entries: es.len() as u64,
                amount: money_sum(currency, es.iter().map(|e| e.amount)),
                label: money_sum(currency, es.iter().filter(|e| e.kind.from_label()).map(|e| e.amount)),
                invoice_adjustments: money_sum(currency, es.iter().filter(|e| e.kind == CostKind::InvoiceAdjustment).map(|e| e.amount)),
                base: base_currency.map(|b| money_sum(b, converted.iter().map(|c| c.conversion.base))),
                waiting_for_rate: (es.len() - converted.len()) as u64,
                rates: rates.into_iter().map(|((rate_from, rate_to, rate_date, source), entries)| RateUsed { rate_from, rate_to, rate_date, source, entries }).collect(),
            }
        })
        .collect();

    // ---- what is posted
    let journals: Vec<JournalSummary> = batches
        .iter()
        .filter(|b| in_period_batch(b) && b.state != BatchState::Withdrawn)
        .map(|b| JournalSummary {
            batch_key: b.batch_key.clone(),
            window: b.window.code(),
            posting_date: b.window.posting_date(),
            // A batch that netted to zero is posted with nothing sent to the ERP.
            state: if b.state == BatchState::Posted && b.erp_move_id.is_none() { "nothing to post".into() } else { b.state.as_str().into() },
            erp_move_id: b.erp_move_id.clone(),
            total: b.total,
            entries: b.entry_count,
            carried_over: b.carried_over,
            lines: b.journal.lines.clone(),
        })
        .collect();
    let mut posting = Posting::default();
    let mut posted: BTreeMap<(String, Currency), (u64, Vec<Money>, Vec<Money>)> = BTreeMap::new();
    for b in batches.iter().filter(|b| in_period_batch(b) && b.state == BatchState::Posted) {
        for (key, carried_from) in members_of.get(b.batch_key.as_str()).into_iter().flatten() {
            // An entry of a label older than the entries read (a late invoice's) is read on its own.
            let fetched;
            let e: &CostEntry = match by_key.get(key.as_str()) {
                Some(e) => e,
                None => match store.get_cost_entry_by_key(&conn.name, key).await? {
                    Some(found) => {
                        fetched = found;
                        &fetched
                    }
                    None => continue,
                },
            };
            let conversion = match conversions.get(key) {
                Some(c) => Some(c.clone()),
                None => store.get_cost_conversion(&conn.name, key).await?,
            };
            if let Some(c) = &conversion {
                let g = posted.entry((e.label.carrier.clone(), e.amount.currency())).or_default();
                g.0 += 1;
                g.1.push(e.amount);
                g.2.push(c.conversion.base);
            }
            posting.posted_entries += 1;
            if carried_from.is_some_and(|w| w.start < period.first_day()) {
                posting.carried_in.push(entry_ref(e, &window_of(e), Some(b), "carried in: its own window was posted or its period closed when it came"));
            }
        }
    }
    if let Some(base) = base_currency {
        posting.posted = Some(money_sum(base, posted.values().flat_map(|g| g.2.iter().copied())));
        posting.debit_total = Some(money_sum(base, batches.iter().filter(|b| in_period_batch(b) && b.state == BatchState::Posted).map(|b| b.total)));
        posting.posted_by_carrier = posted
            .into_iter()
            .map(|((carrier, currency), (entries, amounts, bases))| PostedGroup {
                carrier,
                currency: currency.code().into(),
                entries,
                amount: money_sum(currency, amounts),
                base: money_sum(base, bases),
            })
            .collect();
    }
    let mut blockers: Vec<Blocker> = Vec::new();
    // The currency each waiting entry needs a rate for, by its blocker's record.
    let mut waiting_currency: HashMap<String, (Currency, Date)> = HashMap::new();
    // A connection without journal accounts posts nothing: its converted entries
    // are listed as not posted, never blockers (a missing rate still is one).
    let posts = conn.accounts.is_some();
    // The zone the converter dates a rate in (as `flows::fx::convert` picks it).
    let fx_tz = match conn.policy.fx_rate_date {
        crate::config::FxRateDate::PostingDate => tz.clone(),
        crate::config::FxRateDate::ShipDate => conn.policy.company_timezone_or(None),
    };
    for e in &own {
        let window = window_of(e);
        let batch = placed.get(&e.entry_key).map(|(b, _)| *b);
        match batch {
            Some(b) if in_period_batch(b) && b.state == BatchState::Posted => {}
            Some(b) if !in_period_batch(b) => {
                posting.carried_out.push(entry_ref(e, &window, Some(b), &format!("carried out into {} ({})", b.window, b.state)));
            }
            _ if !conversions.contains_key(&e.entry_key) => {
                let note = format!("waiting for a {} to {} rate", e.amount.currency(), base_currency.map(|c| c.code()).unwrap_or("base currency"));
                posting.waiting_for_rate.push(entry_ref(e, &window, batch, &note));
                waiting_currency.insert(format!("cost_entry:{}", e.entry_key), (e.amount.currency(), crate::flows::fx::wanted_date(&conn.policy, e, &fx_tz)));
                blockers.push(Blocker {
                    kind: BlockerKind::WaitingForRate,
                    code: BlockerKind::WaitingForRate.code().into(),
                    record: format!("cost_entry:{}", e.entry_key),
                    owner: Owner::Finance,
                    message: format!("cost entry {} ({} {}, order {}) is {note}: add the rate in the ERP or the rate source and post", e.entry_key, e.label.carrier, e.amount, e.label.erp_id.as_deref().unwrap_or("none")),
                    exception_id: None,
                });
            }
            _ => {
                let note = match batch {
                    Some(b) => format!("its batch {} is {}, not posted", b.batch_key, b.state),
                    None => "in no batch yet".into(),
                };
                posting.not_posted.push(entry_ref(e, &window, batch, &note));
                // A window still open posts when it ends; the period not having
                // ended is its own blocker.
                if posts && window.has_ended(company_date(now, &tz)) {
                    blockers.push(Blocker {
                        kind: BlockerKind::NotPosted,
                        code: BlockerKind::NotPosted.code().into(),
                        record: format!("cost_entry:{}", e.entry_key),
                        owner: Owner::Finance,
                        message: format!("cost entry {} ({} {}) of window {window} is in no posted journal: {note}; run `shipledger costs post`", e.entry_key, e.label.carrier, e.amount),
                        exception_id: None,
                    });
                }
            }
        }
    }

    // ---- carrier invoices
    let mut invoices = Invoices::default();
    let all_invoices = store.list_carrier_invoices(Some(&conn.name)).await?;
    let charges = store.list_invoice_charges(InvoiceChargeFilter { connection: Some(conn.name.clone()), ..Default::default() }).await?;
    let mut charges_of: HashMap<i64, Vec<&shipledger_store::InvoiceChargeRecord>> = HashMap::new();
    for c in &charges {
        charges_of.entry(c.invoice_id).or_default().push(c);
    }
    let mut invoicing_carriers: BTreeSet<String> = BTreeSet::new();
    for inv in all_invoices.iter().filter(|i| period.contains(i.date)) {
        invoicing_carriers.insert(inv.carrier.clone());
        let of: &[&shipledger_store::InvoiceChargeRecord] = charges_of.get(&inv.id).map(Vec::as_slice).unwrap_or(&[]);
        invoices.invoices.push(InvoiceSummary {
            carrier: inv.carrier.clone(),
            number: inv.number.clone(),
            date: inv.date,
            file_name: inv.file_name.clone(),
            charges: of.len() as u64,
            unmatched: of.iter().filter(|c| c.shipment_key.is_none()).count() as u64,
            billed: sum_by_currency(of.iter().map(|c| c.amount)),
        });
        for c in of.iter().filter(|c| c.shipment_key.is_none()) {
            invoices.unmatched.push(UnmatchedCharge {
                carrier: c.carrier.clone(),
                invoice_number: c.invoice_number.clone(),
                invoice_date: c.invoice_date,
                row: c.row,
                tracking_number: c.tracking_number.clone(),
                charge_type: c.charge_type.clone(),
                amount: c.amount,
            });
        }
    }
    let mut adjustments: BTreeMap<(String, Currency), Vec<&CostEntry>> = BTreeMap::new();
    for e in own.iter().filter(|e| e.kind == CostKind::InvoiceAdjustment) {
        adjustments.entry((e.label.carrier.clone(), e.amount.currency())).or_default().push(e);
    }
    invoices.adjustments = adjustments
        .into_iter()
        .map(|((carrier, currency), es)| AdjustmentGroup {
            carrier,
            currency: currency.code().into(),
            entries: es.len() as u64,
            amount: money_sum(currency, es.iter().map(|e| e.amount)),
            base: base_currency.map(|b| money_sum(b, es.iter().filter_map(|e| conversions.get(&e.entry_key)).map(|c| c.conversion.base))),
        })
        .collect();
    for carrier in &invoicing_carriers {
        for s in store.uninvoiced_labels(&conn.name, carrier, period.first_day(), period.last_day()).await? {
            invoices.not_billed.push(NotBilled {
                shipment_key: s.shipment_key.clone(),
                carrier: s.carrier.clone(),
                tracking_number: s.tracking_number.clone(),
                ship_date: s.ship_date,
                erp_id: s.erp_id.clone(),
            });
        }
    }

    // ---- margin: every entry of the orders shipped in the period
    let order_entries: Vec<CostEntry> = entries.iter().filter(|e| e.label.erp_id.as_ref().is_some_and(|id| orders.contains(id))).cloned().collect();
    let margins = crate::margins::of_orders(store, &conn.name, &order_entries, &conversions, &crate::margins::rate_pool(&conversions)).await?;
    let mut margin = MarginSummary { orders: orders.len() as u64, ..Default::default() };
    let mut by_currency: BTreeMap<Currency, (u64, Vec<Money>, Vec<Money>)> = BTreeMap::new();
    let mut free_cost: Vec<Money> = Vec::new();
    for m in margins.values() {
        let row = || OrderMarginRow {
            erp_id: m.margin.erp_id.clone(),
            number: m.number.clone(),
            charged: m.margin.charged,
            charged_compared: m.margin.charged_compared,
            cost: m.margin.cost,
            margin: m.margin.margin,
            note: m.margin.note.clone(),
        };
        if m.margin.free_shipping {
            margin.free_shipping_orders += 1;
        }
        let Some(cost) = m.margin.cost else {
            margin.not_comparable.push(row());
            continue;
        };
        let g = by_currency.entry(cost.currency()).or_default();
        g.0 += 1;
        g.1.push(m.margin.charged_compared.unwrap_or(Money::zero(cost.currency())));
        g.2.push(cost);
        if m.margin.free_shipping {
            free_cost.push(cost);
        } else if crate::margins::undercharged(&conn.policy, &m.margin).is_some() {
            margin.undercharged.push(row());
        }
    }
    margin.by_currency = by_currency
        .into_iter()
        .map(|(currency, (orders, charged, cost))| {
            let (charged, cost) = (money_sum(currency, charged), money_sum(currency, cost));
            MarginGroup { currency: currency.code().into(), orders, charged, cost, margin: charged.checked_sub(&cost).unwrap_or(Money::zero(currency)) }
        })
        .collect();
    margin.free_shipping_cost = sum_by_currency(free_cost);

    // ---- exceptions: every live one by owner and age; the blocking ones of the
    // period (their record dated in it or before) are blockers.
    let live = store.list_exceptions(ExceptionFilter { connection: Some(conn.name.clone()), live: true, ..Default::default() }).await?;
    let mut ages: BTreeMap<Owner, BTreeMap<AgeBand, u64>> = BTreeMap::new();
    for e in &live {
        *ages.entry(e.owner).or_default().entry(AgeBand::of(e.age(now))).or_default() += 1;
    }
    let exceptions = [Owner::Finance, Owner::Ops, Owner::Admin]
        .into_iter()
        .map(|owner| {
            let mut by_age: BTreeMap<AgeBand, u64> = AgeBand::ALL.iter().map(|b| (*b, 0)).collect();
            for (band, n) in ages.get(&owner).into_iter().flatten() {
                by_age.insert(*band, *n);
            }
            OwnerAges { owner, total: by_age.values().sum(), by_age }
        })
        .collect();
    let mut reconciler = Reconciler::default();
    for e in live.iter().filter(|e| e.kind.blocks_close() || DRIFT_KINDS.contains(&e.kind)) {
        if record_date(engine, conn, e, &by_key, &tz).await? > period.last_day() {
            continue;
        }
        let r = exception_ref(e);
        match e.kind {
            ExceptionKind::ShippedNotFulfilled => reconciler.shipped_not_fulfilled.push(r.clone()),
            ExceptionKind::FulfilledWithoutLabel => reconciler.fulfilled_without_label.push(r.clone()),
            ExceptionKind::ShippedNotInvoiced => reconciler.shipped_not_invoiced.push(r.clone()),
            ExceptionKind::InvoicedNotShipped => reconciler.invoiced_not_shipped.push(r.clone()),
            _ => {}
        }
        if e.kind.blocks_close() {
            let record = format!("{}:{}", e.record_type, e.record_id);
            // A missing rate is named through the entries waiting for it (`USD/GBP
            // 2026-11-27`: the entries in USD), each carrying the exception's id.
            if e.kind == ExceptionKind::FxRateMissing {
                let pair = crate::flows::fx::parse_pair_id(&e.record_id).map(|(from, _, date)| (from, date));
                let mut named = false;
                for b in blockers.iter_mut().filter(|b| b.kind == BlockerKind::WaitingForRate && waiting_currency.get(&b.record).copied() == pair) {
                    b.exception_id = Some(e.id);
                    named = true;
                }
                if named {
                    continue;
                }
            }
            // An entry already named as waiting or not posted carries the exception's id instead.
            if let Some(b) = blockers.iter_mut().find(|b| b.kind != BlockerKind::Exception && b.record == record) {
                b.exception_id = Some(e.id);
                continue;
            }
            blockers.push(Blocker {
                kind: BlockerKind::Exception,
                code: e.kind.code().into(),
                record,
                owner: e.owner,
                message: r.message.clone(),
                exception_id: Some(e.id),
            });
        }
    }
    let last_run = store
        .list_reconcile_runs(ReconcileRunFilter { connection: Some(conn.name.clone()), state: Some(ReconcileState::Done), limit: 1, ..Default::default() })
        .await?
        .into_iter()
        .next();
    reconciler.last_run = last_run.as_ref().map(|r| RunRef { id: r.id, mode: r.mode.as_str().into(), finished_at: r.finished_at });

    if !ended {
        blockers.push(Blocker {
            kind: BlockerKind::PeriodNotEnded,
            code: BlockerKind::PeriodNotEnded.code().into(),
            record: format!("period:{period}"),
            owner: Owner::Finance,
            message: format!("{period} runs until the end of {} ({tz_name}): its last days' labels and costs are not all in", period.last_day(), tz_name = tz.iana_name().unwrap_or("UTC")),
            exception_id: None,
        });
    } else if !last_run.as_ref().is_some_and(|r| r.started_at >= end) {
        blockers.push(Blocker {
            kind: BlockerKind::NotReconciled,
            code: BlockerKind::NotReconciled.code().into(),
            record: format!("period:{period}"),
            owner: Owner::Admin,
            message: format!(
                "no reconciler run started after {period} ended has finished{}: run `shipledger reconcile` (or let `serve` run it) so drift is known before closing",
                last_run.as_ref().map(|r| format!(" (the last started at {})", r.started_at)).unwrap_or_default()
            ),
            exception_id: None,
        });
    }
    let blockers = settle_blockers(blockers);
    let verdict = Verdict { ready: blockers.is_empty(), summary: verdict_text(period, &blockers), blockers };

    Ok(CloseReport {
        connection: conn.name.clone(),
        period: period.to_string(),
        from: period.first_day(),
        to: period.last_day(),
        timezone: tz.iana_name().unwrap_or("UTC").to_string(),
        base_currency: base_currency.map(|c| c.code().to_string()),
        generated_at: now,
        ended,
        labels,
        costs,
        journals,
        posting,
        invoices,
        margin,
        reconciler,
        exceptions,
        verdict,
    })
}

fn entry_ref(e: &CostEntry, own_window: &Window, batch: Option<&CostBatchRecord>, note: &str) -> EntryRef {
    EntryRef {
        entry_key: e.entry_key.clone(),
        erp_id: e.label.erp_id.clone(),
        carrier: e.label.carrier.clone(),
        amount: e.amount,
        own_window: own_window.code(),
        batch_key: batch.map(|b| b.batch_key.clone()),
        batch_state: batch.map(|b| b.state.as_str().to_string()),
        note: note.to_string(),
    }
}

fn exception_ref(e: &ExceptionRecord) -> ExceptionRef {
    ExceptionRef {
        id: e.id,
        kind: e.kind.code().into(),
        owner: e.owner,
        record: format!("{}:{}", e.record_type, e.record_id),
        first_seen: e.first_seen,
        message: e.detail["message"].as_str().map(str::to_string).unwrap_or_else(|| e.kind.meaning().to_string()),
    }
}

/// The labels and fulfillments ShipStation made in `start..end`, in creation order.
async fn shipments_in(store: &dyn shipledger_store::Store, connection: &str, start: Timestamp, end: Timestamp) -> Result<Vec<ShipmentRecord>, EngineError> {
    let mut out = Vec::new();
    // The cursor just before the period's first instant.
    let mut after = Some(ShipmentCursor {
        ss_created_at: start.checked_sub(jiff::SignedDuration::from_nanos(1)).unwrap_or(start),
        connection: connection.to_string(),
        shipment_key: String::new(),
    });
    loop {
        let page = store
            .list_shipments(ShipmentFilter { connection: Some(connection.to_string()), after: after.clone(), limit: crate::flows::reconcile::PAGE, ..Default::default() })
            .await?;
        let full = page.len() == crate::flows::reconcile::PAGE as usize;
        after = page.last().map(ShipmentCursor::after);
        let mut past = false;
        for s in page {
            if s.ss_created_at >= end {
                past = true;
                break;
            }
            if s.ss_created_at >= start {
                out.push(s);
            }
        }
        if past || !full {
            break;
        }
    }
    Ok(out)
}

/// The company date an exception's record belongs to, for the period it blocks: a
/// label's creation, a cost entry's own date, an invoice's date, a rate's date, a
/// batch's last day, an order's first label (else when shipledger first saw the
/// order); any other record, when the exception was first seen.
async fn record_date(engine: &Engine, conn: &Connection, e: &ExceptionRecord, entries: &HashMap<&str, &CostEntry>, tz: &TimeZone) -> Result<Date, EngineError> {
    let store = engine.store.as_ref();
    let at = |t: Timestamp| company_date(t, tz);
    let id = e.record_id.as_str();
    let found: Option<Date> = match e.record_type.as_str() {
        "shipment" => store.get_shipment(&conn.name, id).await?.map(|s| at(s.ss_created_at)),
        "cost_entry" => match entries.get(id) {
            Some(entry) => Some(at(entry.posting_at())),
            None => store.get_cost_entry_by_key(&conn.name, id).await?.map(|c| at(c.posting_at())),
        },
        "invoice_charge" => {
            let mut parts = id.splitn(3, ':');
            match (parts.next(), parts.next()) {
                (Some(carrier), Some(number)) => store.get_carrier_invoice(&conn.name, carrier, number).await?.map(|i| i.date),
                _ => None,
            }
        }
        "fx_rate" => crate::flows::fx::parse_pair_id(id).map(|(_, _, date)| date),
        "cost_batch" => store.get_cost_batch(&conn.name, id).await?.map(|b| b.window.end),
        "order" => {
            let first = store
                .list_shipments(ShipmentFilter { connection: Some(conn.name.clone()), erp_id: Some(id.to_string()), limit: 1, ..Default::default() })
                .await?
                .into_iter()
                .next()
                .map(|s| s.ss_created_at);
            match first {
                Some(t) => Some(at(t)),
                None => store.get_order(&conn.name, id).await?.map(|o| at(o.created_at)),
            }
        }
        _ => None,
    };
    Ok(found.unwrap_or_else(|| at(e.first_seen)))
}
