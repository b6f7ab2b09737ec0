//! The cost ledger's vocabulary and its one rule: what a label costs becomes
//! immutable [`CostEntry`]s in the currency the charge was made in, and a later
//! reading of the same label never edits one — it adds entries until the ledger's net
//! per charge equals what the label costs now ([`plan`]).
//!
//! - One entry per charge of a label ([`Charge`]: postage, insurance, another named
//!   charge), keyed by shipment + charge + revision ([`entry_key`]), so reading the
//!   same label again plans the same keys and the store ignores them.
//! - A changed cost adds a [`CostKind::Revision`] for the difference (a charge whose
//!   currency changed, because ShipStation v2 named it where v1 could not, reverses
//!   the old currency's net and records the new one).
//! - A void adds one [`CostKind::VoidReversal`] per entry of the label that is not
//!   reversed yet, keyed by the entry it reverses, so the label nets to zero and the
//!   void is counted once however often it is seen.
//!
//! Conversion to the ERP's base currency (rate, rate date, source, rounding, base
//! amount) and batch membership are *not* fields of an entry: they are rows of their
//! own that point at an entry's id, added alongside it and never written into it.
//! This module decides nothing about IO; the engine reads the entries a label has and
//! the store writes what [`plan`] returns.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostKind {
    /// A charge as a label first showed it.
    Label,
    /// A later reading of the same label showed a different cost: the difference.
    Revision,
    /// The label was voided: the opposite of one entry ([`CostEntry::reverses`]).
    VoidReversal,
    /// A carrier invoice billed a charge of the label differently: what it billed
    /// (over every invoice imported for the label) less what the ledger had for the
    /// charge ([`crate::invoice::plan_adjustments`]). Posted in the window of the
    /// invoice date, never in the label's.
    InvoiceAdjustment,
}

impl CostKind {
    pub const ALL: &'static [CostKind] = &[CostKind::Label, CostKind::Revision, CostKind::VoidReversal, CostKind::InvoiceAdjustment];

    pub fn code(self) -> &'static str {
        match self {
            CostKind::Label => "label",
            CostKind::Revision => "revision",
            CostKind::VoidReversal => "void_reversal",
            CostKind::InvoiceAdjustment => "invoice_adjustment",
        }
    }

    /// Whether the entry comes from the label as ShipStation shows it (its cost, a
    /// revision, a void), not from a carrier's invoice.
    pub fn from_label(self) -> bool {
        self != CostKind::InvoiceAdjustment
    }

    pub fn parse(code: &str) -> Option<CostKind> {
        CostKind::ALL.iter().copied().find(|k| k.code() == code)
    }
}

impl std::fmt::Display for CostKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Which charge of a label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Charge {
    Postage,
    Insurance,
    /// Another charge the API names (`other:<name>` as text).
    Other(String),
}

impl Charge {
    /// `postage`, `insurance`, `other:<name>`.
    pub fn code(&self) -> String {
        match self {
            Charge::Postage => "postage".into(),
            Charge::Insurance => "insurance".into(),
            Charge::Other(name) => format!("other:{name}"),
        }
    }

    pub fn parse(code: &str) -> Option<Charge> {
        match code {
            "postage" => Some(Charge::Postage),
            "insurance" => Some(Charge::Insurance),
            other => other.strip_prefix("other:").filter(|n| !n.is_empty()).map(|n| Charge::Other(n.to_string())),
        }
    }
}

impl std::fmt::Display for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code())
    }
}

impl Serialize for Charge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

impl<'de> Deserialize<'de> for Charge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Charge, D::Error> {
        let text = String::deserialize(d)?;
        Charge::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a charge (postage, insurance, other:<name>)")))
    }
}

/// Where a cost was read. v1 sends bare numbers (the connection's account currency is
/// assumed); v2 names the currency, so a v2 reading is the better one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CostSource {
    #[serde(rename = "shipstation_v1")]
    ShipstationV1,
    #[serde(rename = "shipstation_v2")]
    ShipstationV2,
    /// A carrier invoice imported by `costs import-invoice`.
    #[serde(rename = "carrier_invoice")]
    CarrierInvoice,
}

impl CostSource {
    pub fn code(self) -> &'static str {
        match self {
            CostSource::ShipstationV1 => "shipstation_v1",
            CostSource::ShipstationV2 => "shipstation_v2",
            CostSource::CarrierInvoice => "carrier_invoice",
        }
    }

    pub fn parse(code: &str) -> Option<CostSource> {
        [CostSource::ShipstationV1, CostSource::ShipstationV2, CostSource::CarrierInvoice].into_iter().find(|s| s.code() == code)
    }

    /// Whether the currency came with the amount (v2, an invoice) rather than being
    /// assumed (v1).
    pub fn names_currency(self) -> bool {
        matches!(self, CostSource::ShipstationV2 | CostSource::CarrierInvoice)
    }
}

impl std::fmt::Display for CostSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What every entry of one label says about the label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelFacts {
    /// `label:{shipmentId}`.
    pub shipment_key: String,
    /// The ERP order the label maps to (`None` for an orphan label).
    pub erp_id: Option<String>,
    pub ss_order_id: i64,
    pub carrier: String,
    pub service: Option<String>,
    pub ship_date: Option<Date>,
    /// When ShipStation made the label, UTC (v1's Pacific time converted at the client).
    pub label_created_at: Timestamp,
}

/// An entry to record: everything but the store's id, connection and recording time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCostEntry {
    /// Unique per connection ([`entry_key`], [`reversal_key`]).
    pub entry_key: String,
    pub kind: CostKind,
    pub charge: Charge,
    /// 0 for the first entry of a charge, then 1, 2, ... for each revision; a
    /// reversal keeps the revision of the entry it reverses.
    pub revision: u32,
    /// In the charge's own currency; negative for a reversal or a lower revision.
    pub amount: Money,
    #[serde(flatten)]
    pub label: LabelFacts,
    /// When it happened: the label's creation, the read that showed the change, the void.
    pub occurred_at: Timestamp,
    pub source: CostSource,
    /// The key of the entry this one reverses (a reversal only).
    pub reverses_key: Option<String>,
}

impl NewCostEntry {
    /// The moment that places the entry in a posting window and dates its rate: the
    /// label's creation for what the label shows (a revision or a void belongs with
    /// the label it changes), the invoice date for an invoice adjustment (it is a
    /// cost of the period the carrier billed it in).
    pub fn posting_at(&self) -> Timestamp {
        if self.kind.from_label() { self.label.label_created_at } else { self.occurred_at }
    }

    /// A charge's first entry on a label: revision 0, keyed [`entry_key`], dated at
    /// the label's creation.
    pub fn first(label: LabelFacts, charge: Charge, amount: Money, source: CostSource) -> NewCostEntry {
        NewCostEntry {
            entry_key: entry_key(&label.shipment_key, &charge, 0),
            kind: CostKind::Label,
            charge,
            revision: 0,
            amount,
            occurred_at: label.label_created_at,
            label,
            source,
            reverses_key: None,
        }
    }
}

/// An entry as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostEntry {
    pub id: i64,
    pub connection: String,
    #[serde(flatten)]
    pub entry: NewCostEntry,
    /// The id of the entry this one reverses.
    pub reverses: Option<i64>,
    pub recorded_at: Timestamp,
}

impl std::ops::Deref for CostEntry {
    type Target = NewCostEntry;
    fn deref(&self) -> &NewCostEntry {
        &self.entry
    }
}

/// `{shipment_key}/{charge}/{revision}`: `label:8001/postage/0`.
pub fn entry_key(shipment_key: &str, charge: &Charge, revision: u32) -> String {
    format!("{shipment_key}/{}/{revision}", charge.code())
}

/// The key of the reversal of the entry keyed `reversed`: `{reversed}/void`.
pub fn reversal_key(reversed: &str) -> String {
    format!("{reversed}/void")
}

/// One reading of a label's costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelReading {
    pub label: LabelFacts,
    pub source: CostSource,
    /// The charges the reading gives, zero ones included. A charge the reading does
    /// not give at all is left as the ledger has it.
    pub charges: Vec<(Charge, Money)>,
    /// When the label was voided (`None`: live).
    pub voided_at: Option<Timestamp>,
    /// When the reading was made.
    pub read_at: Timestamp,
}

impl LabelReading {
    /// Whether the reading has no postage (v1 `shipmentCost` null): nothing is
    /// recorded for it, and finance is told.
    pub fn postage_missing(&self) -> bool {
        !self.charges.iter().any(|(c, _)| *c == Charge::Postage)
    }
}

/// Whether a first entry is made for a charge of this amount: postage always (a zero
/// postage is a fact: a label billed elsewhere), other charges only when non-zero (a
/// zero insurance means none was bought).
fn worth_a_first_entry(charge: &Charge, amount: &Money) -> bool {
    *charge == Charge::Postage || amount.minor() != 0
}

/// The entries that bring the ledger of one label (`existing`: every entry of its
/// shipment key, in any order) to what `reading` says, never changing one:
///
/// - a live label: per charge of the reading, a first entry ([`CostKind::Label`]),
///   or a revision for the difference from the net recorded in its currency; a net
///   left in another currency is reversed by a revision of its own. A v1 reading
///   never revises a charge a v2 reading recorded (v1 only assumes the currency);
/// - a voided label: its charges first when it was never seen live, then one
///   reversal per entry not reversed yet.
///
/// Planning twice from the same state gives the same keys, so what two workers both
/// plan is recorded once.
pub fn plan(reading: &LabelReading, existing: &[CostEntry]) -> Vec<NewCostEntry> {
    let mut out: Vec<NewCostEntry> = Vec::new();
    // What the label shows is revised and voided on its own: invoice adjustments are
    // what a carrier billed, which a later reading of the label or its void does not
    // change (a carrier refunds a voided label on a later invoice, if at all).
    let live: Vec<&NewCostEntry> = existing.iter().map(|e| &e.entry).filter(|e| e.kind.from_label()).collect();
    if reading.voided_at.is_none() || live.is_empty() {
        out.extend(revise(reading, &live));
    }
    if let Some(voided_at) = reading.voided_at {
        let reversed: std::collections::HashSet<&str> =
            live.iter().filter_map(|e| e.reverses_key.as_deref()).collect();
        let to_reverse: Vec<NewCostEntry> = live
            .iter()
            .map(|e| (*e).clone())
            .chain(out.iter().cloned())
            .filter(|e| e.kind != CostKind::VoidReversal && !reversed.contains(e.entry_key.as_str()))
            .collect();
        for entry in to_reverse {
            out.push(NewCostEntry {
                entry_key: reversal_key(&entry.entry_key),
                kind: CostKind::VoidReversal,
                charge: entry.charge.clone(),
                revision: entry.revision,
                amount: entry.amount.neg(),
                label: reading.label.clone(),
                occurred_at: voided_at,
                source: reading.source,
                reverses_key: Some(entry.entry_key.clone()),
            });
        }
    }
    out
}

/// The first entries or revisions of a live reading.
fn revise(reading: &LabelReading, live: &[&NewCostEntry]) -> Vec<NewCostEntry> {
    let mut out = Vec::new();
    for (charge, amount) in &reading.charges {
        let of_charge: Vec<&&NewCostEntry> = live.iter().filter(|e| e.charge == *charge).collect();
        if !reading.source.names_currency() && of_charge.iter().any(|e| e.source.names_currency()) {
            continue;
        }
        let entry = |kind, revision, amount: Money| NewCostEntry {
            entry_key: entry_key(&reading.label.shipment_key, charge, revision),
            kind,
            charge: charge.clone(),
            revision,
            amount,
            label: reading.label.clone(),
            occurred_at: if kind == CostKind::Label { reading.label.label_created_at } else { reading.read_at },
            source: reading.source,
            reverses_key: None,
        };
        if of_charge.is_empty() {
            if worth_a_first_entry(charge, amount) {
                out.push(NewCostEntry::first(reading.label.clone(), charge.clone(), *amount, reading.source));
            }
            continue;
        }
        let mut net: BTreeMap<&'static str, (Currency, i128)> = BTreeMap::new();
        for e in &of_charge {
            let slot = net.entry(e.amount.currency().code()).or_insert((e.amount.currency(), 0));
            slot.1 += i128::from(e.amount.minor());
        }
        let mut revision = of_charge.iter().map(|e| e.revision).max().unwrap_or(0);
        for (code, (currency, sum)) in &net {
            if *code != amount.currency().code() && *sum != 0 {
                let Ok(minor) = i64::try_from(-sum) else { continue };
                revision += 1;
                out.push(entry(CostKind::Revision, revision, Money::from_minor(minor, *currency)));
            }
        }
        let have = net.get(amount.currency().code()).map(|(_, s)| *s).unwrap_or(0);
        let diff = i128::from(amount.minor()) - have;
        if diff != 0
            && let Ok(minor) = i64::try_from(diff)
        {
            revision += 1;
            out.push(entry(CostKind::Revision, revision, Money::from_minor(minor, amount.currency())));
        }
    }
    out
}

/// What entries net to, per currency (a label's total, a list's total).
pub fn net_by_currency<'a>(entries: impl IntoIterator<Item = &'a NewCostEntry>) -> Vec<Money> {
    sum_by_currency(entries.into_iter().map(|e| e.amount))
}

/// Amounts summed per currency, by currency code.
pub fn sum_by_currency(amounts: impl IntoIterator<Item = Money>) -> Vec<Money> {
    let mut net: BTreeMap<&'static str, (Currency, i64)> = BTreeMap::new();
    for m in amounts {
        let slot = net.entry(m.currency().code()).or_insert((m.currency(), 0));
        slot.1 = slot.1.saturating_add(m.minor());
    }
    net.into_values().map(|(c, m)| Money::from_minor(m, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> LabelFacts {
        LabelFacts {
            shipment_key: "label:8001".into(),
            erp_id: Some("SO-1".into()),
            ss_order_id: 77,
            carrier: "ups".into(),
            service: Some("ups_ground".into()),
            ship_date: Some(jiff::civil::date(2026, 11, 3)),
            label_created_at: "2026-11-03T17:00:00Z".parse().unwrap(),
        }
    }

    fn reading(source: CostSource, charges: Vec<(Charge, Money)>, voided: bool) -> LabelReading {
        LabelReading {
            label: facts(),
            source,
            charges,
            voided_at: voided.then(|| "2026-11-04T09:00:00Z".parse().unwrap()),
            read_at: "2026-11-05T10:00:00Z".parse().unwrap(),
        }
    }

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::USD)
    }

    /// The store's side: entries get ids and their reversal's id in order.
    fn record(existing: &mut Vec<CostEntry>, planned: Vec<NewCostEntry>) {
        for entry in planned {
            if existing.iter().any(|e| e.entry_key == entry.entry_key) {
                continue;
            }
            let reverses = entry.reverses_key.as_ref().and_then(|k| existing.iter().find(|e| &e.entry_key == k)).map(|e| e.id);
            let id = existing.len() as i64 + 1;
            existing.push(CostEntry { id, connection: "c".into(), entry, reverses, recorded_at: Timestamp::UNIX_EPOCH });
        }
    }

    #[test]
    fn a_label_records_postage_and_paid_insurance_once_however_often_it_is_read() {
        let r = reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(895)), (Charge::Insurance, usd(150))], false);
        let mut ledger = Vec::new();
        let planned = plan(&r, &ledger);
        record(&mut ledger, planned);
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger[0].entry_key, "label:8001/postage/0");
        assert_eq!(ledger[1].entry_key, "label:8001/insurance/0");
        assert_eq!(ledger[0].occurred_at, facts().label_created_at);
        assert!(plan(&r, &ledger).is_empty());
    }

    #[test]
    fn zero_postage_is_recorded_and_zero_insurance_is_not() {
        let r = reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(0)), (Charge::Insurance, usd(0))], false);
        let planned = plan(&r, &[]);
        assert_eq!(planned.len(), 1);
        assert_eq!((planned[0].charge.clone(), planned[0].amount), (Charge::Postage, usd(0)));
    }

    #[test]
    fn a_changed_cost_adds_the_difference_as_a_revision() {
        let mut ledger = Vec::new();
        let planned = plan(&reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(895))], false), &ledger);
        record(&mut ledger, planned);
        let later = reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(1020))], false);
        let planned = plan(&later, &ledger);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].kind, CostKind::Revision);
        assert_eq!(planned[0].entry_key, "label:8001/postage/1");
        assert_eq!(planned[0].amount, usd(125));
        assert_eq!(planned[0].occurred_at, later.read_at);
        record(&mut ledger, planned);
        assert_eq!(net_by_currency(ledger.iter().map(|e| &e.entry)), vec![usd(1020)]);
        assert!(plan(&later, &ledger).is_empty());
    }

    #[test]
    fn a_void_reverses_every_entry_once_and_nets_to_zero() {
        let mut ledger = Vec::new();
        let planned = plan(&reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(895)), (Charge::Insurance, usd(150))], false), &ledger);
        record(&mut ledger, planned);
        let planned = plan(&reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(900)), (Charge::Insurance, usd(150))], false), &ledger);
        record(&mut ledger, planned);
        let void = reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(900)), (Charge::Insurance, usd(150))], true);
        let planned = plan(&void, &ledger);
        assert_eq!(planned.len(), 3, "{planned:#?}");
        assert!(planned.iter().all(|e| e.kind == CostKind::VoidReversal && e.reverses_key.is_some()));
        record(&mut ledger, planned);
        assert_eq!(net_by_currency(ledger.iter().map(|e| &e.entry)), vec![usd(0)]);
        assert_eq!(ledger[3].reverses, Some(1));
        assert!(plan(&void, &ledger).is_empty(), "the second sight of the void adds nothing");
    }

    #[test]
    fn a_label_first_seen_voided_records_its_charge_and_its_reversal() {
        let planned = plan(&reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(895))], true), &[]);
        let kinds: Vec<CostKind> = planned.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![CostKind::Label, CostKind::VoidReversal]);
        assert_eq!(planned[1].reverses_key.as_deref(), Some("label:8001/postage/0"));
        assert_eq!(planned[1].amount, usd(-895));
    }

    #[test]
    fn v2_naming_another_currency_moves_the_charge_to_it_and_v1_does_not_move_it_back() {
        let eur = |m| Money::from_minor(m, Currency::EUR);
        let mut ledger = Vec::new();
        let planned = plan(&reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(895))], false), &ledger);
        record(&mut ledger, planned);
        let v2 = reading(CostSource::ShipstationV2, vec![(Charge::Postage, eur(895))], false);
        let planned = plan(&v2, &ledger);
        assert_eq!(planned.iter().map(|e| e.amount).collect::<Vec<_>>(), vec![usd(-895), eur(895)]);
        assert_eq!(planned.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![1, 2]);
        record(&mut ledger, planned);
        assert!(plan(&v2, &ledger).is_empty());
        assert!(plan(&reading(CostSource::ShipstationV1, vec![(Charge::Postage, usd(895))], false), &ledger).is_empty());
        let mut net = net_by_currency(ledger.iter().map(|e| &e.entry));
        net.sort_by_key(|m| m.currency().code());
        assert_eq!(net, vec![eur(895), usd(0)]);
    }

    #[test]
    fn charges_and_kinds_read_back_from_their_text() {
        for c in [Charge::Postage, Charge::Insurance, Charge::Other("fuel".into())] {
            assert_eq!(Charge::parse(&c.code()), Some(c));
        }
        assert_eq!(Charge::parse("other:"), None);
        for k in CostKind::ALL {
            assert_eq!(CostKind::parse(k.code()), Some(*k));
        }
    }
}
