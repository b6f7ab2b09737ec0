//! Carrier invoices: what a carrier finally billed for each parcel, read from the
//! carrier's file, and the rules that turn it into cost-ledger entries.
//!
//! - **Reading** ([`read`]): a normalised CSV (the columns of [`NORMALISED_COLUMNS`],
//!   one charge a row) or a carrier's own export through a [`Mapping`] (a small TOML
//!   file naming the export's columns), so nobody edits the carrier's file. Every row
//!   is checked before anything is used: the first bad one stops the whole file with
//!   the file, the row (its line, as a spreadsheet numbers it) and the field named
//!   ([`InvoiceFileError`]).
//! - **Charges**: a charge type the mapping does not name is classified by its words
//!   ([`charge_of`]): transportation, freight, postage and base charges are postage;
//!   insurance and declared value are insurance; anything else (fuel, residential,
//!   address correction, weight audit) is a named other charge, `other:fuel_surcharge`.
//! - **Adjustments** ([`plan_adjustments`]): per charge an invoice bills, what every
//!   invoice imported for the label billed less what the ledger has for that charge,
//!   one entry per currency, keyed by the invoice so importing it again plans the
//!   same keys. Charges the invoice does not bill (insurance bought from a third
//!   party, say) are left as the label had them.
//! - **Variance** ([`variance`]): label cost against invoiced cost, flagged over a
//!   percentage *and* an absolute floor, on exact integers.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cost::{Charge, CostKind, CostSource, LabelFacts, NewCostEntry};
use crate::money::{Currency, Money, Rounding};

/// The columns of a normalised invoice file, in the order the README documents.
pub const NORMALISED_COLUMNS: [&str; 6] = ["tracking_number", "invoice_number", "invoice_date", "charge_type", "amount", "currency"];

/// How a carrier's own export maps onto the normalised columns (`--mapping M`).
///
/// ```toml
/// date_format = "%m/%d/%Y"          # strftime; default %Y-%m-%d
/// [columns]
/// tracking_number = "Tracking ID"
/// invoice_number = "Invoice Number"
/// invoice_date = "Invoice Date"
/// charge_type = "Charge Description"
/// amount = "Net Amount"
/// currency = "Currency"             # or, without the column: currency = "USD" at the top
/// [charge_types]                    # optional: the file's words -> postage, insurance, other:NAME
/// "Transportation Charge" = "postage"
/// ```
///
/// A wide layout (one column per charge) names `[amounts]` (charge -> column)
/// instead of `columns.charge_type` and `columns.amount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub columns: MappedColumns,
    /// Wide layouts: a charge (`postage`, `insurance`, `other:NAME`, or the file's own
    /// word for it) → the column holding its amount on every row.
    #[serde(default)]
    pub amounts: BTreeMap<String, String>,
    /// The currency of every amount, for a file with no currency column.
    pub currency: Option<String>,
    /// How the invoice date is written (strftime, `%m/%d/%Y`); `%Y-%m-%d` if unset.
    pub date_format: Option<String>,
    /// The field separator, one character (`;`, `\t`); `,` if unset.
    pub delimiter: Option<String>,
    /// The file's charge types → `postage`, `insurance` or `other:NAME`.
    #[serde(default)]
    pub charge_types: BTreeMap<String, String>,
}

/// The export's column names (as its header row spells them) of each normalised field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedColumns {
    pub tracking_number: String,
    pub invoice_number: String,
    pub invoice_date: String,
    pub charge_type: Option<String>,
    pub amount: Option<String>,
    pub currency: Option<String>,
}

impl Mapping {
    /// The normalised layout, as a mapping onto itself.
    pub fn normalised() -> Mapping {
        Mapping {
            columns: MappedColumns {
                tracking_number: "tracking_number".into(),
                invoice_number: "invoice_number".into(),
                invoice_date: "invoice_date".into(),
                charge_type: Some("charge_type".into()),
                amount: Some("amount".into()),
                currency: Some("currency".into()),
            },
            ..Mapping::default()
        }
    }
}

/// Why a file (or its mapping) cannot be imported: where, and what is wrong. Nothing
/// of the file is imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFileError {
    /// The invoice file, or the mapping file when the mapping is at fault.
    pub file: String,
    /// The line of the file (the header is line 1), when one row is at fault.
    pub row: Option<u64>,
    /// The field (`amount`, `columns.amount`), when one is at fault.
    pub field: Option<String>,
    pub problem: String,
}

impl fmt::Display for InvoiceFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", {field}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for InvoiceFileError {}

/// One charge of an invoice, as its row gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// The row's line in the file.
    pub row: u64,
    pub tracking_number: String,
    /// The charge type as the file words it.
    pub charge_type: String,
    pub charge: Charge,
    pub amount: Money,
}

/// One invoice of a file (a carrier's file may hold several).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub number: String,
    pub date: Date,
    pub lines: Vec<InvoiceLine>,
    /// What the invoice bills, whatever the layout or row order it came in: the same
    /// invoice imported again (from the same file or another export of it) hashes the
    /// same.
    pub content_sha256: String,
}

/// A file's invoices, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFile {
    pub file: String,
    pub invoices: Vec<Invoice>,
}

/// Read and check `bytes`, the invoice file named `file`, laid out as `mapping` says
/// (`mapping_name` names the mapping file in errors; `None`: the normalised layout).
pub fn read(file: &str, bytes: &[u8], mapping: &Mapping, mapping_name: Option<&str>) -> Result<InvoiceFile, InvoiceFileError> {
    let at_mapping = |field: &str, problem: String| InvoiceFileError {
        file: mapping_name.unwrap_or(file).to_string(),
        row: None,
        field: Some(field.to_string()),
        problem,
    };
    let at = |row: u64, field: &str, problem: String| InvoiceFileError { file: file.to_string(), row: Some(row), field: Some(field.to_string()), problem };

    // The mapping on its own.
    let delimiter = match mapping.delimiter.as_deref() {
        None => b',',
        Some("\\t") | Some("\t") => b'\t',
        Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
        Some(d) => return Err(at_mapping("delimiter", format!("{d:?} is not one character (use \",\", \";\", \"|\" or \"\\t\")"))),
    };
    let layout = match (&mapping.columns.charge_type, &mapping.columns.amount, mapping.amounts.is_empty()) {
        (Some(charge_type), Some(amount), true) => Layout::Long { charge_type: charge_type.clone(), amount: amount.clone() },
        (None, None, false) => Layout::Wide,
        (_, _, false) => {
            return Err(at_mapping("amounts", "a mapping gives either [amounts] (one column per charge) or columns.charge_type and columns.amount, not both".into()));
        }
        (None, _, true) => return Err(at_mapping("columns.charge_type", "is missing: name the column of the charge type, or give [amounts] for one column per charge".into())),
        (_, None, true) => return Err(at_mapping("columns.amount", "is missing: name the column of the amount, or give [amounts] for one column per charge".into())),
    };
    let fixed_currency = match (&mapping.columns.currency, &mapping.currency) {
        (Some(_), Some(_)) => return Err(at_mapping("currency", "give either columns.currency (a column) or currency (one code for the whole file), not both".into())),
        (None, None) => return Err(at_mapping("columns.currency", "is missing: name the currency column, or set currency = \"USD\" for a file in one currency".into())),
        (None, Some(code)) => Some(Currency::parse(code).map_err(|_| at_mapping("currency", format!("{code:?} is not an ISO 4217 currency code")))?),
        (Some(_), None) => None,
    };
    let mut named: BTreeMap<String, Charge> = BTreeMap::new();
    for (word, charge) in &mapping.charge_types {
        named.insert(word.trim().to_lowercase(), parse_charge(charge).ok_or_else(|| at_mapping(&format!("charge_types.{word:?}"), bad_charge(charge)))?);
    }
    let mut wide: Vec<(String, Charge, String)> = Vec::new();
    for (charge, column) in &mapping.amounts {
        let c = parse_charge(charge).unwrap_or_else(|| charge_of(charge, &named));
        wide.push((charge.clone(), c, column.clone()));
    }
    let date_format = mapping.date_format.clone().unwrap_or_else(|| "%Y-%m-%d".into());

    // The header: every named column must be there.
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).trim(csv::Trim::All).flexible(true).from_reader(text);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| InvoiceFileError { file: file.into(), row: Some(1), field: None, problem: format!("the header row cannot be read: {e}") })?
        .iter()
        .map(str::to_string)
        .collect();
    let column = |field: &str, name: &str| -> Result<usize, InvoiceFileError> {
        let found: Vec<usize> = header.iter().enumerate().filter(|(_, h)| h.eq_ignore_ascii_case(name.trim())).map(|(i, _)| i).collect();
        match found.as_slice() {
            [i] => Ok(*i),
            [] => {
                let columns = header.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(", ");
                Err(match mapping_name {
                    Some(_) => at_mapping(field, format!("names the column {name:?}, which {file} does not have (its columns: {columns})")),
                    None => InvoiceFileError {
                        file: file.into(),
                        row: Some(1),
                        field: Some(name.into()),
                        problem: format!(
                            "the header has no {name} column; a normalised invoice has the columns {} (its columns: {columns}); for a carrier's own layout give --mapping",
                            NORMALISED_COLUMNS.join(", ")
                        ),
                    },
                })
            }
            _ => Err(at_mapping(field, format!("names the column {name:?}, which {file} has more than once"))),
        }
    };
    let c_tracking = column("columns.tracking_number", &mapping.columns.tracking_number)?;
    let c_invoice = column("columns.invoice_number", &mapping.columns.invoice_number)?;
    let c_date = column("columns.invoice_date", &mapping.columns.invoice_date)?;
    let c_currency = match &mapping.columns.currency {
        Some(name) => Some(column("columns.currency", name)?),
        None => None,
    };
    let cells: Cells = match &layout {
        Layout::Long { charge_type, amount } => Cells::Long { charge_type: column("columns.charge_type", charge_type)?, amount: column("columns.amount", amount)? },
        Layout::Wide => {
            let mut columns = Vec::new();
            for (word, charge, name) in &wide {
                columns.push((word.clone(), charge.clone(), column(&format!("amounts.{word:?}"), name)?));
            }
            Cells::Wide(columns)
        }
    };

    // The rows, every one checked.
    let mut invoices: BTreeMap<String, Invoice> = BTreeMap::new();
    let mut dated_on_row: BTreeMap<String, u64> = BTreeMap::new();
    // The csv reader does not count the blank lines it skips; a row is named by its
    // line in the file, as an editor or a spreadsheet shows it.
    let mut lines = LineOf { text, byte: 0, line: 1 };
    for record in reader.records() {
        let record = record.map_err(|e| {
            let row = e.position().map(|p| lines.at(p.byte()));
            InvoiceFileError { file: file.into(), row, field: None, problem: format!("the row cannot be read: {e}") }
        })?;
        let row = record.position().map(|p| lines.at(p.byte())).unwrap_or(0);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cell = |i: usize| record.get(i).unwrap_or("");
        let name = |i: usize| header.get(i).cloned().unwrap_or_default();
        let tracking = cell(c_tracking);
        if tracking.is_empty() {
            return Err(at(row, &name(c_tracking), "the tracking number is missing; every charge must name the parcel it bills".into()));
        }
        let number = cell(c_invoice);
        if number.is_empty() {
            return Err(at(row, &name(c_invoice), "the invoice number is missing".into()));
        }
        let date_text = cell(c_date);
        let date = parse_date(date_text, &date_format).ok_or_else(|| {
            at(row, &name(c_date), format!("{date_text:?} is not a date written {date_format}{}", if mapping.date_format.is_none() { " (set date_format in a mapping for another layout)" } else { "" }))
        })?;
        let currency = match (fixed_currency, c_currency) {
            (Some(c), _) => c,
            (None, Some(i)) => {
                let code = cell(i);
                if code.is_empty() {
                    return Err(at(row, &name(i), "the currency is missing".into()));
                }
                Currency::parse(code).map_err(|_| at(row, &name(i), format!("{code:?} is not an ISO 4217 currency code")))?
            }
            (None, None) => unreachable!("the mapping check requires a currency"),
        };
        let amount = |i: usize, allow_empty: bool| -> Result<Option<Money>, InvoiceFileError> {
            let text = cell(i);
            if text.is_empty() {
                return if allow_empty { Ok(None) } else { Err(at(row, &name(i), "the amount is missing".into())) };
            }
            Money::parse(text, currency, Rounding::Exact).map(Some).map_err(|_| {
                at(
                    row,
                    &name(i),
                    format!("{text:?} is not an amount of {currency}: a plain decimal such as 12.34 or -1.50, with at most {} decimals, no currency sign or thousands separator", currency.exponent()),
                )
            })
        };
        let mut lines = Vec::new();
        match &cells {
            Cells::Long { charge_type, amount: a } => {
                let word = cell(*charge_type);
                if word.is_empty() {
                    return Err(at(row, &name(*charge_type), "the charge type is missing".into()));
                }
                let value = amount(*a, false)?.expect("a required amount");
                lines.push(InvoiceLine { row, tracking_number: tracking.into(), charge_type: word.into(), charge: charge_of(word, &named), amount: value });
            }
            Cells::Wide(columns) => {
                for (word, charge, i) in columns {
                    if let Some(value) = amount(*i, true)?
                        && value.minor() != 0
                    {
                        lines.push(InvoiceLine { row, tracking_number: tracking.into(), charge_type: word.clone(), charge: charge.clone(), amount: value });
                    }
                }
            }
        }
        let invoice = invoices.entry(number.to_string()).or_insert_with(|| Invoice { number: number.into(), date, lines: Vec::new(), content_sha256: String::new() });
        let first = *dated_on_row.entry(number.to_string()).or_insert(row);
        if invoice.date != date {
            return Err(at(row, &name(c_date), format!("invoice {number} is dated {} on row {first} and {date} here; one invoice has one date", invoice.date)));
        }
        invoice.lines.extend(lines);
    }
    if invoices.values().all(|i| i.lines.is_empty()) {
        return Err(InvoiceFileError { file: file.into(), row: None, field: None, problem: "the file has no charges".into() });
    }
    let invoices = invoices
        .into_values()
        .filter(|i| !i.lines.is_empty())
        .map(|mut i| {
            i.content_sha256 = content_hash(&i);
            i
        })
        .collect();
    Ok(InvoiceFile { file: file.into(), invoices })
}

/// Line numbers of byte offsets met in increasing order.
struct LineOf<'a> {
    text: &'a [u8],
    byte: usize,
    line: u64,
}

impl LineOf<'_> {
    /// The line of the record read from `byte` (where the reader started it, which
    /// may be before the blank lines it skipped).
    fn at(&mut self, byte: u64) -> u64 {
        let mut to = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        while to < self.text.len() && matches!(self.text[to], b'\n' | b'\r') {
            to += 1;
        }
        if to > self.byte {
            self.line += self.text[self.byte..to].iter().filter(|b| **b == b'\n').count() as u64;
            self.byte = to;
        }
        self.line
    }
}

enum Layout {
    Long { charge_type: String, amount: String },
    Wide,
}

enum Cells {
    Long { charge_type: usize, amount: usize },
    Wide(Vec<(String, Charge, usize)>),
}

fn bad_charge(text: &str) -> String {
    format!("{text:?} is not a charge: postage, insurance or other:NAME")
}

/// `postage`, `insurance`, `other:NAME` as [`Charge::parse`] reads them.
fn parse_charge(text: &str) -> Option<Charge> {
    Charge::parse(text.trim())
}

fn parse_date(text: &str, format: &str) -> Option<Date> {
    if format == "%Y-%m-%d" {
        return text.parse::<Date>().ok();
    }
    Date::strptime(format, text).ok()
}

/// The charge a carrier's word for it names: the mapping's word first, then the
/// words themselves (see the module's notes), else `other:` its words in snake case.
pub fn charge_of(charge_type: &str, named: &BTreeMap<String, Charge>) -> Charge {
    let lower = charge_type.trim().to_lowercase();
    if let Some(c) = named.get(&lower) {
        return c.clone();
    }
    if let Some(c) = Charge::parse(&lower) {
        return c;
    }
    let has = |w: &str| lower.contains(w);
    if has("insurance") || has("declared value") {
        return Charge::Insurance;
    }
    if has("surcharge") || has("fee") || has("correction") || has("adjustment") || has("audit") {
        return Charge::Other(slug(&lower));
    }
    if has("transportation") || has("freight") || has("postage") || lower == "shipping" || lower == "base" || has("base charge") || has("base rate") {
        return Charge::Postage;
    }
    Charge::Other(slug(&lower))
}

fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() { "charge".into() } else { out }
}

fn content_hash(invoice: &Invoice) -> String {
    let mut items: Vec<String> = invoice
        .lines
        .iter()
        .map(|l| format!("{}\u{1f}{}\u{1f}{}\u{1f}{}", l.tracking_number, l.charge.code(), l.amount.minor(), l.amount.currency().code()))
        .collect();
    items.sort();
    let mut hasher = Sha256::new();
    hasher.update(invoice.number.as_bytes());
    hasher.update([0x1e]);
    hasher.update(invoice.date.to_string().as_bytes());
    for item in items {
        hasher.update([0x1e]);
        hasher.update(item.as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `{shipment_key}/{charge}/invoice:{invoice_number}:{CUR}`: `label:8001/postage/invoice:INV-7:USD`.
pub fn adjustment_key(shipment_key: &str, charge: &Charge, invoice_number: &str, currency: Currency) -> String {
    format!("{shipment_key}/{}/invoice:{invoice_number}:{}", charge.code(), currency.code())
}

/// The moment an invoice's entries are dated: noon UTC of its date, which is that
/// date in every company time zone from UTC−11 to UTC+11.
pub fn invoice_moment(date: Date) -> Timestamp {
    date.at(12, 0, 0, 0).to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Sums per charge and currency.
fn sums<'a>(items: impl IntoIterator<Item = (&'a Charge, &'a Money)>) -> BTreeMap<(Charge, &'static str), (Currency, i128)> {
    let mut out: BTreeMap<(Charge, &'static str), (Currency, i128)> = BTreeMap::new();
    for (charge, money) in items {
        let slot = out.entry((charge.clone(), money.currency().code())).or_insert((money.currency(), 0));
        slot.1 += i128::from(money.minor());
    }
    out
}

/// The adjustments invoice `number` (dated `date`) makes to one label: for every
/// charge it bills, per currency, what `billed` (every invoice imported for the
/// label, this one included) bills for the charge less what `ledger` (every entry of
/// the label) nets to for it. Nothing for a charge whose ledger already equals what
/// was billed; nothing for a charge this invoice does not bill.
pub fn plan_adjustments(
    label: &LabelFacts,
    ledger: &[NewCostEntry],
    billed: &[(Charge, Money)],
    this_invoice: &[(Charge, Money)],
    number: &str,
    date: Date,
) -> Vec<NewCostEntry> {
    let target = sums(billed.iter().map(|(c, m)| (c, m)));
    let have = sums(ledger.iter().map(|e| (&e.charge, &e.amount)));
    let charges: std::collections::BTreeSet<&Charge> = this_invoice.iter().map(|(c, _)| c).collect();
    let at = invoice_moment(date);
    let mut out = Vec::new();
    for charge in charges {
        let mut currencies: BTreeMap<&'static str, Currency> = BTreeMap::new();
        for ((c, code), (currency, _)) in target.iter().chain(have.iter()) {
            if c == charge {
                currencies.insert(code, *currency);
            }
        }
        let revision = ledger.iter().filter(|e| e.charge == *charge).map(|e| e.revision).max().unwrap_or(0);
        for (code, currency) in currencies {
            let want = target.get(&(charge.clone(), code)).map(|s| s.1).unwrap_or(0);
            let now = have.get(&(charge.clone(), code)).map(|s| s.1).unwrap_or(0);
            let Ok(diff) = i64::try_from(want - now) else { continue };
            if diff == 0 {
                continue;
            }
            out.push(NewCostEntry {
                entry_key: adjustment_key(&label.shipment_key, charge, number, currency),
                kind: CostKind::InvoiceAdjustment,
                charge: charge.clone(),
                revision,
                amount: Money::from_minor(diff, currency),
                label: label.clone(),
                occurred_at: at,
                source: CostSource::CarrierInvoice,
                reverses_key: None,
            });
        }
    }
    out
}

/// A label whose invoiced cost is far from its label cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variance {
    pub label: Money,
    pub invoiced: Money,
    /// Invoiced less label.
    pub difference: Money,
    /// The difference as a percentage of the label cost, to two places (`None` for
    /// a label that cost nothing).
    pub percent: Option<Decimal>,
}

/// `label` against `invoiced` (one currency): flagged when the difference is at
/// least `floor` (in minor units) *and* more than `percent` % of the label cost (any
/// difference on a label that cost nothing). Exact integers; `None` when within.
pub fn variance(label: Money, invoiced: Money, percent: u32, floor_minor: i64) -> Option<Variance> {
    if label.currency() != invoiced.currency() {
        return None;
    }
    let diff = i128::from(invoiced.minor()) - i128::from(label.minor());
    let base = i128::from(label.minor()).abs();
    let over_floor = diff.abs() >= i128::from(floor_minor.max(0)) && diff != 0;
    let over_pct = base == 0 || diff.abs() * 100 > i128::from(percent) * base;
    if !(over_floor && over_pct) {
        return None;
    }
    let pct = (base != 0).then(|| {
        let mut p = (Decimal::from_i128_with_scale(diff * 100, 0) / Decimal::from_i128_with_scale(base, 0)).round_dp(2);
        p.rescale(2);
        p
    });
    Some(Variance { label, invoiced, difference: Money::from_minor(i64::try_from(diff).ok()?, label.currency()), percent: pct })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_normalised(text: &str) -> Result<InvoiceFile, InvoiceFileError> {
        read("inv.csv", text.as_bytes(), &Mapping::normalised(), None)
    }

    const HEADER: &str = "tracking_number,invoice_number,invoice_date,charge_type,amount,currency\n";

    #[test]
    fn a_normalised_file_reads_into_invoices_with_their_charges_classified() {
        let text = format!(
            "{HEADER}1Z1,INV-1,2026-11-30,Transportation,9.50,USD\n1Z1,INV-1,2026-11-30,Fuel Surcharge,1.20,USD\n1Z2,INV-2,2026-11-30,postage,4.00,USD\n\n1Z2,INV-2,2026-11-30,Residential Surcharge,\"3.00\",USD\n"
        );
        let file = read_normalised(&text).unwrap();
        assert_eq!(file.invoices.len(), 2);
        let inv1 = &file.invoices[0];
        assert_eq!((inv1.number.as_str(), inv1.date), ("INV-1", jiff::civil::date(2026, 11, 30)));
        let charges: Vec<(u64, String, i64)> = inv1.lines.iter().map(|l| (l.row, l.charge.code(), l.amount.minor())).collect();
        assert_eq!(charges, vec![(2, "postage".into(), 950), (3, "other:fuel_surcharge".into(), 120)]);
        assert_eq!(file.invoices[1].lines[1].row, 6, "rows are the file's lines, blank ones counted");
    }

    #[test]
    fn the_same_invoice_hashes_the_same_in_any_row_order_and_differently_when_an_amount_changes() {
        let a = read_normalised(&format!("{HEADER}1Z1,INV-1,2026-11-30,postage,9.50,USD\n1Z2,INV-1,2026-11-30,postage,4.00,USD\n")).unwrap();
        let b = read_normalised(&format!("{HEADER}1Z2,INV-1,2026-11-30,postage,4.00,USD\n1Z1,INV-1,2026-11-30,postage,9.50,USD\n")).unwrap();
        let c = read_normalised(&format!("{HEADER}1Z2,INV-1,2026-11-30,postage,4.01,USD\n1Z1,INV-1,2026-11-30,postage,9.50,USD\n")).unwrap();
        assert_eq!(a.invoices[0].content_sha256, b.invoices[0].content_sha256);
        assert_ne!(a.invoices[0].content_sha256, c.invoices[0].content_sha256);
    }

    #[test]
    fn each_malformed_row_is_named_by_file_row_and_field() {
        let cases = [
            ("1Z1,INV-1,2026-11-30,postage,9.5x,USD", "amount", "is not an amount"),
            ("1Z1,INV-1,2026-11-30,postage,9.501,USD", "amount", "at most 2 decimals"),
            ("1Z1,INV-1,2026-11-30,postage,9.50,XYZ", "currency", "not an ISO 4217"),
            (",INV-1,2026-11-30,postage,9.50,USD", "tracking_number", "tracking number is missing"),
            ("1Z1,INV-1,30/11/2026,postage,9.50,USD", "invoice_date", "not a date"),
            ("1Z1,,2026-11-30,postage,9.50,USD", "invoice_number", "missing"),
        ];
        for (row, field, says) in cases {
            let e = read_normalised(&format!("{HEADER}1Z0,INV-1,2026-11-30,postage,1.00,USD\n{row}\n")).unwrap_err();
            assert_eq!((e.file.as_str(), e.row, e.field.as_deref()), ("inv.csv", Some(3), Some(field)), "{row}: {e}");
            assert!(e.problem.contains(says), "{row}: {e}");
            assert!(e.to_string().starts_with(&format!("inv.csv, row 3, {field}: ")), "{e}");
        }
    }

    #[test]
    fn one_invoice_with_two_dates_and_a_missing_column_are_refused() {
        let e = read_normalised(&format!("{HEADER}1Z1,INV-1,2026-11-30,postage,1.00,USD\n1Z2,INV-1,2026-11-29,postage,1.00,USD\n")).unwrap_err();
        assert_eq!(e.row, Some(3));
        assert!(e.problem.contains("dated 2026-11-30 on row 2"), "{e}");
        let e = read_normalised("tracking_number,invoice_number,invoice_date,charge_type,currency\n1Z1,INV-1,2026-11-30,postage,USD\n").unwrap_err();
        assert_eq!((e.row, e.field.as_deref()), (Some(1), Some("amount")));
        assert!(e.problem.contains("--mapping"), "{e}");
    }

    #[test]
    fn a_carriers_long_layout_reads_through_a_mapping_and_a_mapping_naming_no_column_is_refused() {
        let mapping: Mapping = serde_json::from_value(serde_json::json!({
            "columns": {"tracking_number": "Tracking ID", "invoice_number": "Invoice Number", "invoice_date": "Invoice Date",
                        "charge_type": "Charge Description", "amount": "Net Amount"},
            "currency": "USD",
            "date_format": "%m/%d/%Y",
            "delimiter": ";",
            "charge_types": {"Ground Service": "postage", "DAS": "other:delivery_area"}
        }))
        .unwrap();
        let text = "Invoice Number;Invoice Date;Tracking ID;Charge Description;Net Amount\n777;11/30/2026;1Z9;Ground Service;8.10\n777;11/30/2026;1Z9;DAS;2.05\n";
        let file = read("fedex.csv", text.as_bytes(), &mapping, Some("fedex.toml")).unwrap();
        let lines: Vec<(String, i64)> = file.invoices[0].lines.iter().map(|l| (l.charge.code(), l.amount.minor())).collect();
        assert_eq!(lines, vec![("postage".into(), 810), ("other:delivery_area".into(), 205)]);
        assert_eq!(file.invoices[0].date, jiff::civil::date(2026, 11, 30));

        let mut wrong = mapping.clone();
        wrong.columns.amount = Some("Net Charge".into());
        let e = read("fedex.csv", text.as_bytes(), &wrong, Some("fedex.toml")).unwrap_err();
        assert_eq!((e.file.as_str(), e.row, e.field.as_deref()), ("fedex.toml", None, Some("columns.amount")));
        assert!(e.problem.contains("\"Net Charge\"") && e.problem.contains("\"Net Amount\""), "{e}");
    }

    #[test]
    fn a_wide_layout_gives_one_charge_per_non_zero_amount_column() {
        let mapping: Mapping = serde_json::from_value(serde_json::json!({
            "columns": {"tracking_number": "Tracking", "invoice_number": "Invoice", "invoice_date": "Date", "currency": "Cur"},
            "amounts": {"postage": "Freight", "Fuel Surcharge": "Fuel", "insurance": "Declared Value"}
        }))
        .unwrap();
        let text = "Invoice,Date,Tracking,Cur,Freight,Fuel,Declared Value\nA1,2026-11-02,T1,EUR,7.00,0.84,\nA1,2026-11-02,T2,EUR,5.00,0.00,1.10\n";
        let file = read("dhl.csv", text.as_bytes(), &mapping, Some("dhl.toml")).unwrap();
        let lines: Vec<(String, String, i64)> = file.invoices[0].lines.iter().map(|l| (l.tracking_number.clone(), l.charge.code(), l.amount.minor())).collect();
        assert_eq!(
            lines,
            vec![
                ("T1".into(), "other:fuel_surcharge".into(), 84),
                ("T1".into(), "postage".into(), 700),
                ("T2".into(), "insurance".into(), 110),
                ("T2".into(), "postage".into(), 500),
            ]
        );
    }

    #[test]
    fn carrier_words_classify_into_charges() {
        let none = BTreeMap::new();
        for (word, code) in [
            ("Transportation Charge", "postage"),
            ("Freight", "postage"),
            ("Shipping", "postage"),
            ("Declared Value", "insurance"),
            ("Fuel Surcharge", "other:fuel_surcharge"),
            ("Address Correction", "other:address_correction"),
            ("Residential Surcharge", "other:residential_surcharge"),
            ("other:dim_weight", "other:dim_weight"),
        ] {
            assert_eq!(charge_of(word, &none).code(), code, "{word}");
        }
    }

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

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::USD)
    }

    #[test]
    fn an_invoice_adjusts_each_charge_it_bills_to_what_every_invoice_billed() {
        let postage = NewCostEntry::first(facts(), Charge::Postage, usd(1000), CostSource::ShipstationV2);
        let insurance = NewCostEntry::first(facts(), Charge::Insurance, usd(200), CostSource::ShipstationV2);
        let fuel = Charge::Other("fuel_surcharge".into());
        let inv1 = vec![(Charge::Postage, usd(950)), (fuel.clone(), usd(120)), (fuel.clone(), usd(10))];
        let date = jiff::civil::date(2026, 11, 30);
        let planned = plan_adjustments(&facts(), &[postage.clone(), insurance.clone()], &inv1, &inv1, "INV-1", date);
        let got: Vec<(String, i64)> = planned.iter().map(|e| (e.entry_key.clone(), e.amount.minor())).collect();
        assert_eq!(
            got,
            vec![("label:8001/postage/invoice:INV-1:USD".into(), -50), ("label:8001/other:fuel_surcharge/invoice:INV-1:USD".into(), 130)],
            "insurance is not billed by the carrier and is left alone"
        );
        assert!(planned.iter().all(|e| e.kind == CostKind::InvoiceAdjustment && e.posting_at() == invoice_moment(date)));

        // The same invoice planned again over the ledger it made: nothing.
        let mut ledger = vec![postage, insurance];
        ledger.extend(planned);
        assert!(plan_adjustments(&facts(), &ledger, &inv1, &inv1, "INV-1", date).is_empty());

        // A later audit invoice adds a weight correction and re-bills postage by 3.00.
        let inv2 = vec![(Charge::Postage, usd(300)), (Charge::Other("weight_correction".into()), usd(400))];
        let billed: Vec<_> = inv1.iter().chain(&inv2).cloned().collect();
        let planned = plan_adjustments(&facts(), &ledger, &billed, &inv2, "INV-2", date);
        let got: Vec<(String, i64)> = planned.iter().map(|e| (e.charge.code(), e.amount.minor())).collect();
        assert_eq!(got, vec![("postage".into(), 300), ("other:weight_correction".into(), 400)]);
    }

    #[test]
    fn a_later_reading_or_void_of_the_label_does_not_undo_an_invoice_adjustment() {
        let postage = NewCostEntry::first(facts(), Charge::Postage, usd(1000), CostSource::ShipstationV2);
        let bill = vec![(Charge::Postage, usd(1250))];
        let adjustment = plan_adjustments(&facts(), std::slice::from_ref(&postage), &bill, &bill, "INV-1", jiff::civil::date(2026, 11, 30));
        let ledger: Vec<crate::cost::CostEntry> = [postage, adjustment[0].clone()]
            .into_iter()
            .enumerate()
            .map(|(i, entry)| crate::cost::CostEntry { id: i as i64 + 1, connection: "c".into(), entry, reverses: None, recorded_at: Timestamp::UNIX_EPOCH })
            .collect();
        let reading = |voided: bool| crate::cost::LabelReading {
            label: facts(),
            source: CostSource::ShipstationV2,
            charges: vec![(Charge::Postage, usd(1000))],
            voided_at: voided.then(|| "2026-12-04T09:00:00Z".parse().unwrap()),
            read_at: "2026-12-04T10:00:00Z".parse().unwrap(),
        };
        assert!(crate::cost::plan(&reading(false), &ledger).is_empty(), "the label still costs 10.00: nothing to revise");
        let void = crate::cost::plan(&reading(true), &ledger);
        let got: Vec<(String, i64)> = void.iter().map(|e| (e.entry_key.clone(), e.amount.minor())).collect();
        assert_eq!(got, vec![("label:8001/postage/0/void".into(), -1000)], "only the label's own entry is reversed");
    }

    #[test]
    fn variance_needs_both_the_percentage_and_the_floor() {
        // 15 %, floor 1.00
        assert!(variance(usd(1000), usd(1150), 15, 100).is_none(), "15 % exactly is within");
        let v = variance(usd(1000), usd(1151), 15, 100).unwrap();
        assert_eq!((v.difference.minor(), v.percent), (151, Some("15.10".parse().unwrap())));
        assert!(variance(usd(100), usd(190), 15, 100).is_none(), "90 % but under the floor");
        assert!(variance(usd(0), usd(800), 15, 100).unwrap().percent.is_none(), "billed for a label that cost nothing");
        assert!(variance(usd(1000), usd(700), 15, 100).is_some(), "billed far less counts too");
    }
}
