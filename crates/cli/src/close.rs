//! `shipledger close-report --period YYYY-MM`: a connection's month as finance closes
//! it ([`shipledger_engine::close`]), as Markdown that reads well printed, CSV that
//! opens in a spreadsheet (one row per figure, a `section` column saying which), or
//! JSON. It reads the store only (and the ERP's time zone and base currency when the
//! configuration does not name them); the verdict is "ready to close" or every
//! blocker with its record and owner.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use shipledger_core::Money;
use shipledger_core::close::{AgeBand, Period};
use shipledger_engine::close::{CloseReport, EntryRef, ExceptionRef};

use crate::run::BadConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Md,
    Csv,
    Json,
}

#[derive(Args)]
pub struct CloseReportArgs {
    #[arg(long)]
    config: PathBuf,
    /// The month to close, in the company's time zone: YYYY-MM.
    #[arg(long)]
    period: String,
    /// The connection (the only one when the file has one).
    #[arg(long)]
    connection: Option<String>,
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
}

pub async fn close_report(args: CloseReportArgs) -> anyhow::Result<()> {
    let period = Period::parse(&args.period).map_err(|e| anyhow::Error::new(BadConfig(format!("--period {e}"))))?;
    let config = crate::run::load_config(&args.config)?;
    let connection = crate::costs::one_connection(&config, args.connection.as_deref(), "close-report")?;
    let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
    let engine = crate::run::engine(&config, store).await?;
    let conn = engine.connections.iter().find(|c| c.name == connection).expect("a configured connection");
    let report = shipledger_engine::close::report(&engine, conn, period).await.with_context(|| format!("{connection}: the close report of {period}"))?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Md => print!("{}", markdown(&report)),
        Format::Csv => print!("{}", csv(&report)),
    }
    Ok(())
}

fn m(money: &Money) -> String {
    money.to_string()
}

fn om(money: &Option<Money>) -> String {
    money.as_ref().map(m).unwrap_or_else(|| "-".into())
}

fn ms(all: &[Money]) -> String {
    if all.is_empty() { "nothing".into() } else { all.iter().map(m).collect::<Vec<_>>().join(", ") }
}

/// A Markdown table cell: pipes escaped, line breaks flattened.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn md_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
    }
    out.push('\n');
}

/// At most this many rows of a list in Markdown; the CSV and JSON have them all.
const MD_ROWS: usize = 25;

fn md_list<T>(out: &mut String, title: &str, items: &[T], header: &[&str], row: impl Fn(&T) -> Vec<String>) {
    if items.is_empty() {
        let _ = writeln!(out, "{title}: none.\n");
        return;
    }
    let _ = writeln!(out, "{title}: {}.\n", items.len());
    let rows: Vec<Vec<String>> = items.iter().take(MD_ROWS).map(row).collect();
    md_table(out, header, &rows);
    if items.len() > MD_ROWS {
        let _ = writeln!(out, "… and {} more (all of them in `--format csv` or `json`).\n", items.len() - MD_ROWS);
    }
}

/// The charge as the order has it, and as compared when that is another currency.
fn charged_text(o: &shipledger_engine::close::OrderMarginRow) -> String {
    match (&o.charged, &o.charged_compared) {
        (Some(c), Some(x)) if c.currency() != x.currency() => format!("{} (= {})", m(c), m(x)),
        (c, _) => om(c),
    }
}

fn entry_row(e: &EntryRef) -> Vec<String> {
    vec![e.entry_key.clone(), e.erp_id.clone().unwrap_or_else(|| "-".into()), e.carrier.clone(), m(&e.amount), e.own_window.clone(), e.note.clone()]
}

const ENTRY_HEADER: &[&str] = &["Entry", "Order", "Carrier", "Amount", "Own window", "Where it is"];

fn exception_row(e: &ExceptionRef) -> Vec<String> {
    vec![e.id.to_string(), e.record.clone(), e.owner.to_string(), e.first_seen.strftime("%Y-%m-%d").to_string(), e.message.clone()]
}

pub fn markdown(r: &CloseReport) -> String {
    let mut out = String::new();
    let base = r.base_currency.as_deref().unwrap_or("base currency");
    let _ = writeln!(out, "# Close report: {}, {}\n", r.connection, r.period);
    let _ = writeln!(
        out,
        "Period {} to {} ({}), base currency {base}. Generated {}{}.\n",
        r.from,
        r.to,
        r.timezone,
        crate::output::time(r.generated_at),
        if r.ended { "" } else { ", before the period ended" }
    );

    let _ = writeln!(out, "## Verdict: {}\n", r.verdict.summary);
    if r.verdict.ready {
        let _ = writeln!(out, "Every cost of the period is converted and posted, and nothing that blocks a close is open.\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .verdict
            .blockers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                vec![(i + 1).to_string(), b.owner.to_string(), b.code.clone(), b.record.clone(), b.exception_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into()), b.message.clone()]
            })
            .collect();
        md_table(&mut out, &["#", "Owner", "Blocker", "Record", "Exception", "What it is"], &rows);
    }

    let l = &r.labels;
    let _ = writeln!(out, "## What shipped\n");
    let _ = writeln!(
        out,
        "{} label(s) made ({} voided, {} live) for {} order(s); {} order(s) marked shipped without a label.\n",
        l.made, l.voided, l.live, l.orders, l.fulfillments
    );
    let states: Vec<String> = l.by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
    if !states.is_empty() {
        let _ = writeln!(out, "Live labels in the ERP: {} (packed: fulfilment written with tracking; completed: first carrier scan; seen: not written yet).\n", states.join(", "));
    }
    if !l.by_carrier.is_empty() {
        let rows: Vec<Vec<String>> = l.by_carrier.iter().map(|c| vec![c.carrier.clone(), c.made.to_string(), c.voided.to_string()]).collect();
        md_table(&mut out, &["Carrier", "Labels", "Voided"], &rows);
    }

    let _ = writeln!(out, "## What it cost\n");
    if r.costs.is_empty() {
        let _ = writeln!(out, "No cost entry belongs to the period.\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .costs
            .iter()
            .map(|c| {
                let rates: Vec<String> = c.rates.iter().map(|x| format!("× {} ÷ {} ({}, {}; {} entries)", x.rate_to, x.rate_from, x.source, x.rate_date, x.entries)).collect();
                vec![
                    c.carrier.clone(),
                    c.currency.clone(),
                    c.entries.to_string(),
                    m(&c.amount),
                    m(&c.label),
                    m(&c.invoice_adjustments),
                    om(&c.base),
                    c.waiting_for_rate.to_string(),
                    if rates.is_empty() { "-".into() } else { rates.join("; ") },
                ]
            })
            .collect();
        md_table(&mut out, &["Carrier", "Currency", "Entries", "Net", "Labels", "Invoice adjustments", &format!("In {base}"), "Waiting for a rate", "Rates used"], &rows);
    }

    let p = &r.posting;
    let _ = writeln!(out, "## What is posted\n");
    if r.journals.is_empty() {
        let _ = writeln!(out, "No journal of the period is planned or posted.\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .journals
            .iter()
            .map(|j| {
                vec![j.batch_key.clone(), j.posting_date.to_string(), j.state.clone(), j.erp_move_id.clone().unwrap_or_else(|| "-".into()), j.entries.to_string(), j.carried_over.to_string(), m(&j.total)]
            })
            .collect();
        md_table(&mut out, &["Journal", "Posting date", "State", "ERP move", "Entries", "Carried over", "Debit total"], &rows);
    }
    let _ = writeln!(
        out,
        "Posted in the period's journals: {} net over {} entr{} (debit total {}, as the ERP shows them).\n",
        om(&p.posted),
        p.posted_entries,
        if p.posted_entries == 1 { "y" } else { "ies" },
        om(&p.debit_total)
    );
    if !p.posted_by_carrier.is_empty() {
        let rows: Vec<Vec<String>> = p.posted_by_carrier.iter().map(|g| vec![g.carrier.clone(), g.currency.clone(), g.entries.to_string(), m(&g.amount), m(&g.base)]).collect();
        md_table(&mut out, &["Carrier", "Currency", "Entries", "Amount", &format!("Posted in {base}")], &rows);
    }
    md_list(&mut out, "Waiting for a rate", &p.waiting_for_rate, ENTRY_HEADER, entry_row);
    md_list(&mut out, "Converted, not posted", &p.not_posted, ENTRY_HEADER, entry_row);
    md_list(&mut out, "Carried in from an earlier period", &p.carried_in, ENTRY_HEADER, entry_row);
    md_list(&mut out, "Carried out into a later period", &p.carried_out, ENTRY_HEADER, entry_row);

    let i = &r.invoices;
    let _ = writeln!(out, "## Carrier invoices\n");
    md_list(&mut out, "Invoices dated in the period", &i.invoices, &["Carrier", "Invoice", "Date", "File", "Charges", "Unmatched", "Billed"], |v| {
        vec![v.carrier.clone(), v.number.clone(), v.date.to_string(), v.file_name.clone(), v.charges.to_string(), v.unmatched.to_string(), ms(&v.billed)]
    });
    md_list(&mut out, "Adjustments to what carriers billed", &i.adjustments, &["Carrier", "Currency", "Entries", "Net", &format!("In {base}")], |a| {
        vec![a.carrier.clone(), a.currency.clone(), a.entries.to_string(), m(&a.amount), om(&a.base)]
    });
    md_list(&mut out, "Charges no label of this connection has", &i.unmatched, &["Carrier", "Invoice", "Row", "Tracking number", "Charge", "Amount"], |u| {
        vec![u.carrier.clone(), u.invoice_number.clone(), u.row.to_string(), u.tracking_number.clone(), u.charge_type.clone(), m(&u.amount)]
    });
    md_list(&mut out, "Labels of an invoicing carrier no invoice bills", &i.not_billed, &["Label", "Carrier", "Tracking number", "Ship date", "Order"], |n| {
        vec![
            n.shipment_key.clone(),
            n.carrier.clone(),
            n.tracking_number.clone().unwrap_or_else(|| "-".into()),
            n.ship_date.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            n.erp_id.clone().unwrap_or_else(|| "-".into()),
        ]
    });

    let g = &r.margin;
    let _ = writeln!(out, "## Shipping margin\n");
    let _ = writeln!(out, "{} order(s) shipped in the period; {} with free shipping, costing {}.\n", g.orders, g.free_shipping_orders, ms(&g.free_shipping_cost));
    if !g.by_currency.is_empty() {
        let rows: Vec<Vec<String>> = g.by_currency.iter().map(|c| vec![c.currency.clone(), c.orders.to_string(), m(&c.charged), m(&c.cost), m(&c.margin)]).collect();
        md_table(&mut out, &["Currency", "Orders", "Charged", "Cost", "Margin"], &rows);
    }
    let margin_header = &["Order", "Number", "Charged", "Cost", "Margin", "Note"];
    let margin_row = |o: &shipledger_engine::close::OrderMarginRow| {
        vec![o.erp_id.clone(), o.number.clone(), charged_text(o), om(&o.cost), om(&o.margin), o.note.clone().unwrap_or_default()]
    };
    md_list(&mut out, "Charged shipping and cost more, over the variance policy", &g.undercharged, margin_header, margin_row);
    md_list(&mut out, "Not comparable yet", &g.not_comparable, margin_header, margin_row);

    let c = &r.reconciler;
    let _ = writeln!(out, "## Drift found by the reconciler\n");
    match &c.last_run {
        Some(run) => {
            let _ = writeln!(out, "Last finished run: #{} ({}), {}.\n", run.id, run.mode, run.finished_at.map(crate::output::time).unwrap_or_default());
        }
        None => {
            let _ = writeln!(out, "The reconciler has not finished a run on this connection.\n");
        }
    }
    let drift_header = &["Exception", "Record", "Owner", "First seen", "What it says"];
    md_list(&mut out, "Shipped, not fulfilled in the ERP", &c.shipped_not_fulfilled, drift_header, exception_row);
    md_list(&mut out, "Fulfilled in the ERP, not shipped (no live label)", &c.fulfilled_without_label, drift_header, exception_row);
    md_list(&mut out, "Shipped, not invoiced", &c.shipped_not_invoiced, drift_header, exception_row);
    md_list(&mut out, "Invoiced, not shipped", &c.invoiced_not_shipped, drift_header, exception_row);

    let _ = writeln!(out, "## Open exceptions by owner and age\n");
    let mut header = vec!["Owner"];
    header.extend(AgeBand::ALL.iter().map(|b| b.label()));
    header.push("Total");
    let rows: Vec<Vec<String>> = r
        .exceptions
        .iter()
        .map(|o| {
            let mut row = vec![o.owner.to_string()];
            row.extend(AgeBand::ALL.iter().map(|b| o.by_age.get(b).copied().unwrap_or(0).to_string()));
            row.push(o.total.to_string());
            row
        })
        .collect();
    md_table(&mut out, &header, &rows);
    out
}

/// A text field a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or
/// a carriage return first), quoted with a leading apostrophe.
fn inert(field: String) -> String {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{field}") } else { field }
}

const CSV_HEADER: &[&str] = &["section", "item", "record", "owner", "carrier", "currency", "count", "amount", "base_amount", "date", "detail"];

/// One row per figure: `section` says which part of the report, the other columns
/// what applies to it (amounts as plain decimals in `currency` and the base currency).
pub fn csv(r: &CloseReport) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let base = r.base_currency.clone().unwrap_or_default();
    let dec = |m: &Money| m.to_decimal().to_string();
    let odec = |m: &Option<Money>| m.as_ref().map(|m| m.to_decimal().to_string()).unwrap_or_default();
    let mut push = |fields: [String; 11]| rows.push(fields.to_vec());
    let e = String::new;
    push(["report".into(), "period".into(), r.period.clone(), e(), e(), base.clone(), e(), e(), e(), r.to.to_string(), format!("{} {} to {} ({})", r.connection, r.from, r.to, r.timezone)]);
    push(["verdict".into(), if r.verdict.ready { "ready".into() } else { "not_ready".into() }, e(), e(), e(), e(), r.verdict.blockers.len().to_string(), e(), e(), e(), r.verdict.summary.clone()]);
    for b in &r.verdict.blockers {
        push(["blocker".into(), b.code.clone(), b.record.clone(), b.owner.to_string(), e(), e(), e(), e(), e(), e(), b.message.clone()]);
    }
    let l = &r.labels;
    for (item, n) in [("made", l.made), ("voided", l.voided), ("live", l.live), ("orders", l.orders), ("fulfillments", l.fulfillments)] {
        push(["labels".into(), item.into(), e(), e(), e(), e(), n.to_string(), e(), e(), e(), e()]);
    }
    for (state, n) in &l.by_state {
        push(["labels".into(), format!("erp_{state}"), e(), e(), e(), e(), n.to_string(), e(), e(), e(), e()]);
    }
    for c in &l.by_carrier {
        push(["labels".into(), "by_carrier".into(), e(), e(), c.carrier.clone(), e(), c.made.to_string(), e(), e(), e(), format!("{} voided", c.voided)]);
    }
    for c in &r.costs {
        let rates: Vec<String> = c.rates.iter().map(|x| format!("x {} / {} ({} {}; {} entries)", x.rate_to, x.rate_from, x.source, x.rate_date, x.entries)).collect();
        push(["cost".into(), "net".into(), e(), e(), c.carrier.clone(), c.currency.clone(), c.entries.to_string(), dec(&c.amount), odec(&c.base), e(), rates.join("; ")]);
        push(["cost".into(), "labels".into(), e(), e(), c.carrier.clone(), c.currency.clone(), e(), dec(&c.label), e(), e(), e()]);
        push(["cost".into(), "invoice_adjustments".into(), e(), e(), c.carrier.clone(), c.currency.clone(), e(), dec(&c.invoice_adjustments), e(), e(), e()]);
        push(["cost".into(), "waiting_for_rate".into(), e(), e(), c.carrier.clone(), c.currency.clone(), c.waiting_for_rate.to_string(), e(), e(), e(), e()]);
    }
    for j in &r.journals {
        push([
            "journal".into(),
            j.state.clone(),
            j.batch_key.clone(),
            e(),
            e(),
            j.total.currency().code().into(),
            j.entries.to_string(),
            e(),
            dec(&j.total),
            j.posting_date.to_string(),
            format!("ERP move {}; {} carried over", j.erp_move_id.as_deref().unwrap_or("-"), j.carried_over),
        ]);
    }
    let p = &r.posting;
    push(["posted".into(), "net".into(), e(), e(), e(), base.clone(), p.posted_entries.to_string(), e(), odec(&p.posted), e(), e()]);
    push(["posted".into(), "debit_total".into(), e(), e(), e(), base.clone(), e(), e(), odec(&p.debit_total), e(), "the journals' debits as the ERP shows them".into()]);
    for g in &p.posted_by_carrier {
        push(["posted".into(), "by_carrier".into(), e(), e(), g.carrier.clone(), g.currency.clone(), g.entries.to_string(), dec(&g.amount), dec(&g.base), e(), e()]);
    }
    for (section, list) in [("waiting_for_rate", &p.waiting_for_rate), ("not_posted", &p.not_posted), ("carried_in", &p.carried_in), ("carried_out", &p.carried_out)] {
        for x in list {
            push([section.into(), x.own_window.clone(), format!("cost_entry:{}", x.entry_key), e(), x.carrier.clone(), x.amount.currency().code().into(), e(), dec(&x.amount), e(), e(), x.note.clone()]);
        }
    }
    let i = &r.invoices;
    for v in &i.invoices {
        push(["invoice".into(), v.number.clone(), format!("carrier_invoice:{}:{}", v.carrier, v.number), e(), v.carrier.clone(), e(), v.charges.to_string(), e(), e(), v.date.to_string(), format!("{} unmatched; billed {}", v.unmatched, ms(&v.billed))]);
    }
    for a in &i.adjustments {
        push(["invoice_adjustments".into(), e(), e(), e(), a.carrier.clone(), a.currency.clone(), a.entries.to_string(), dec(&a.amount), odec(&a.base), e(), e()]);
    }
    for u in &i.unmatched {
        push([
            "unmatched_charge".into(),
            u.charge_type.clone(),
            format!("invoice_charge:{}:{}:{}", u.carrier, u.invoice_number, u.tracking_number),
            "finance".into(),
            u.carrier.clone(),
            u.amount.currency().code().into(),
            e(),
            dec(&u.amount),
            e(),
            u.invoice_date.to_string(),
            format!("row {}", u.row),
        ]);
    }
    for n in &i.not_billed {
        push(["not_billed".into(), n.tracking_number.clone().unwrap_or_default(), format!("shipment:{}", n.shipment_key), e(), n.carrier.clone(), e(), e(), e(), e(), n.ship_date.map(|d| d.to_string()).unwrap_or_default(), n.erp_id.clone().unwrap_or_default()]);
    }
    let g = &r.margin;
    push(["margin".into(), "orders".into(), e(), e(), e(), e(), g.orders.to_string(), e(), e(), e(), e()]);
    for c in &g.by_currency {
        push(["margin".into(), "charged".into(), e(), e(), e(), c.currency.clone(), c.orders.to_string(), dec(&c.charged), e(), e(), e()]);
        push(["margin".into(), "cost".into(), e(), e(), e(), c.currency.clone(), c.orders.to_string(), dec(&c.cost), e(), e(), e()]);
        push(["margin".into(), "margin".into(), e(), e(), e(), c.currency.clone(), c.orders.to_string(), dec(&c.margin), e(), e(), e()]);
    }
    push(["margin".into(), "free_shipping_orders".into(), e(), e(), e(), e(), g.free_shipping_orders.to_string(), e(), e(), e(), e()]);
    for cost in &g.free_shipping_cost {
        push(["margin".into(), "free_shipping_cost".into(), e(), e(), e(), cost.currency().code().into(), e(), dec(cost), e(), e(), e()]);
    }
    for (item, list) in [("undercharged", &g.undercharged), ("not_comparable", &g.not_comparable)] {
        for o in list {
            push([
                "margin".into(),
                item.into(),
                format!("order:{}", o.erp_id),
                e(),
                e(),
                o.cost.map(|c| c.currency().code().to_string()).unwrap_or_default(),
                e(),
                odec(&o.margin),
                e(),
                e(),
                format!("{}: charged {}, cost {}{}", o.number, charged_text(o), om(&o.cost), o.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default()),
            ]);
        }
    }
    let c = &r.reconciler;
    if let Some(run) = &c.last_run {
        push(["reconciler".into(), "last_run".into(), format!("reconcile_run:{}", run.id), e(), e(), e(), e(), e(), e(), run.finished_at.map(|t| t.to_string()).unwrap_or_default(), run.mode.clone()]);
    }
    for list in [&c.shipped_not_fulfilled, &c.fulfilled_without_label, &c.shipped_not_invoiced, &c.invoiced_not_shipped] {
        for x in list {
            push(["drift".into(), x.kind.clone(), x.record.clone(), x.owner.to_string(), e(), e(), e(), e(), e(), x.first_seen.to_string(), x.message.clone()]);
        }
    }
    for o in &r.exceptions {
        for (band, n) in &o.by_age {
            push(["open_exceptions".into(), band.code().into(), e(), o.owner.to_string(), e(), e(), n.to_string(), e(), e(), e(), band.label().into()]);
        }
    }
    let mut out = crate::output::csv_line(&CSV_HEADER.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out.push('\n');
    for row in rows {
        // Text from carrier files and messages is never read as a formula by a
        // spreadsheet; the number columns (count, amount, base_amount) stay numbers.
        let row: Vec<String> = row.into_iter().enumerate().map(|(i, f)| if matches!(i, 6..=8) { f } else { inert(f) }).collect();
        out.push_str(&crate::output::csv_line(&row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carrier_text_never_becomes_a_spreadsheet_formula_or_breaks_a_markdown_table() {
        assert_eq!(inert("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("@SUM(A1)".into()), "'@SUM(A1)");
        assert_eq!(inert("1Z999".into()), "1Z999");
        assert_eq!(cell("a|b\\|c\nd"), "a\\|b\\\\\\|c d");
    }
}
