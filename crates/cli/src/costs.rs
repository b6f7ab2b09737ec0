//! `shipledger costs list|show|post|batches`: the cost ledger as the store keeps it — one entry per
//! charge of a label in its original currency, revisions and void reversals as
//! entries of their own — for people (a table with the net per currency), programs
//! (JSON) and spreadsheets (CSV), each with its conversion to the ERP's base
//! currency (base amount, both rates, rate date, source) or "waiting for a rate".
//! `list` and `show` only read; `costs post` converts, plans and posts the due
//! batches now (what `serve` does on schedule), and `costs batches` lists them.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::json;
use shipledger_core::cost::net_by_currency;
use shipledger_store::{BatchState, CostBatchFilter, CostBatchRecord, CostConversion, CostCursor, CostEntry, CostEntryFilter};

use crate::output::{table, time};
use crate::run::BadConfig;

#[derive(Subcommand)]
pub enum CostsCommand {
    /// Cost entries by label time (all connections unless one is named).
    List(ListArgs),
    /// One cost entry in full, by id or by key (`label:8001/postage/0`).
    Show(ShowArgs),
    /// Post the due cost batches now: convert what has a rate, plan each due window's
    /// journal and post it to the ERP, read back.
    Post(PostArgs),
    /// The cost batches planned, posted or withdrawn, by window.
    Batches(BatchesArgs),
    /// Import a carrier invoice: charges matched to labels by tracking number, the
    /// ledger adjusted to what was billed (posted in the next batch), unmatched
    /// charges and large variances raised to finance. Importing it again changes
    /// nothing; a bad row stops the whole file.
    ImportInvoice(ImportInvoiceArgs),
}

#[derive(Args)]
pub struct ImportInvoiceArgs {
    #[arg(long)]
    config: PathBuf,
    /// The invoice file: a normalised CSV (tracking_number, invoice_number,
    /// invoice_date, charge_type, amount, currency) or the carrier's own export with
    /// --mapping.
    file: PathBuf,
    /// The carrier that billed it, as ShipStation codes it on its labels (`ups`,
    /// `fedex`, `stamps_com`).
    #[arg(long)]
    carrier: String,
    /// The connection the invoice belongs to (the only one when the file has one).
    #[arg(long)]
    connection: Option<String>,
    /// A TOML file naming the columns of the carrier's own layout (README: carrier invoices).
    #[arg(long)]
    mapping: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct PostArgs {
    #[arg(long)]
    config: PathBuf,
    /// Only this connection.
    #[arg(long)]
    connection: Option<String>,
    /// Also post the windows ending on or before this company date (YYYY-MM-DD),
    /// though they have not ended yet (today's window, say).
    #[arg(long)]
    until: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct BatchesArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    connection: Option<String>,
    /// planned, posted or withdrawn.
    #[arg(long)]
    state: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    connection: Option<String>,
    /// Only the entries of this ERP order.
    #[arg(long = "order")]
    order: Option<String>,
    /// Labels made on or after this UTC day (YYYY-MM-DD).
    #[arg(long)]
    since: Option<String>,
    /// Labels made on or before this UTC day (YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
    /// At most this many entries (0: all).
    #[arg(long, default_value_t = 0)]
    limit: u32,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct ShowArgs {
    #[arg(long)]
    config: PathBuf,
    /// The connection of an entry named by key (the only one when the file has one).
    #[arg(long)]
    connection: Option<String>,
    /// The entry's id, or its key.
    entry: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn bad(message: String) -> anyhow::Error {
    anyhow::Error::new(BadConfig(message))
}

/// The start of a UTC day; `next` the start of the day after.
fn day(flag: &str, text: &str, next: bool) -> anyhow::Result<Timestamp> {
    let date: Date = text.parse().map_err(|e| bad(format!("{flag} {text:?} is not a date (YYYY-MM-DD): {e}")))?;
    let date = if next { date.tomorrow().map_err(|e| bad(format!("{flag} {text}: {e}")))? } else { date };
    date.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|e| bad(format!("{flag} {text}: {e}")))
}

fn check_connection(config: &shipledger_engine::config::Config, name: &str) -> anyhow::Result<()> {
    if config.connections.iter().any(|c| c.name == name) {
        Ok(())
    } else {
        let known: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
        Err(bad(format!("--connection {name}: the configuration has no such connection (it has {})", known.join(", "))))
    }
}

const WAITING: &str = "waiting for a rate";

fn conversion_json(c: Option<&CostConversion>) -> serde_json::Value {
    match c {
        None => json!({"status": WAITING}),
        Some(c) => {
            let v = &c.conversion;
            json!({
                "status": "converted",
                "base_amount": v.base.to_decimal().to_string(),
                "base_minor": v.base.minor(),
                "base_currency": v.base.currency().code(),
                "rate_from": v.rate_from.to_string(),
                "rate_to": v.rate_to.to_string(),
                "rate_date": v.rate_date.to_string(),
                "wanted_date": v.wanted_date.to_string(),
                "source": v.source.code(),
                "source_detail": c.source_detail,
                "rounding": "half_even",
                "exact": v.exact.to_string(),
                "converted_at": c.converted_at.to_string(),
            })
        }
    }
}

fn entry_json(e: &CostEntry, c: Option<&CostConversion>) -> serde_json::Value {
    json!({
        "conversion": conversion_json(c),
        "id": e.id,
        "connection": e.connection,
        "entry_key": e.entry_key,
        "kind": e.kind.code(),
        "charge": e.charge.code(),
        "revision": e.revision,
        "amount": e.amount.to_decimal().to_string(),
        "amount_minor": e.amount.minor(),
        "currency": e.amount.currency().code(),
        "shipment_key": e.label.shipment_key,
        "erp_id": e.label.erp_id,
        "shipstation_order_id": e.label.ss_order_id,
        "carrier": e.label.carrier,
        "service": e.label.service,
        "ship_date": e.label.ship_date.map(|d| d.to_string()),
        "label_created_at": e.label.label_created_at.to_string(),
        "occurred_at": e.occurred_at.to_string(),
        "source": e.source.code(),
        "reverses": e.reverses,
        "reverses_key": e.reverses_key,
        "recorded_at": e.recorded_at.to_string(),
    })
}

const CSV_HEADER: &[&str] = &[
    "id", "connection", "entry_key", "kind", "charge", "revision", "amount", "currency", "shipment_key", "erp_id",
    "shipstation_order_id", "carrier", "service", "ship_date", "label_created_at", "occurred_at", "source", "reverses",
    "recorded_at", "base_amount", "base_currency", "rate_from", "rate_to", "rate_date", "rate_source", "fx_status",
];

fn csv_row(e: &CostEntry, c: Option<&CostConversion>) -> Vec<String> {
    let v = c.map(|c| &c.conversion);
    let mut row = vec![
        e.id.to_string(),
        e.connection.clone(),
        e.entry_key.clone(),
        e.kind.code().into(),
        e.charge.code(),
        e.revision.to_string(),
        e.amount.to_decimal().to_string(),
        e.amount.currency().code().into(),
        e.label.shipment_key.clone(),
        e.label.erp_id.clone().unwrap_or_default(),
        e.label.ss_order_id.to_string(),
        e.label.carrier.clone(),
        e.label.service.clone().unwrap_or_default(),
        e.label.ship_date.map(|d| d.to_string()).unwrap_or_default(),
        e.label.label_created_at.to_string(),
        e.occurred_at.to_string(),
        e.source.code().into(),
        e.reverses.map(|id| id.to_string()).unwrap_or_default(),
        e.recorded_at.to_string(),
    ];
    row.extend([
        v.map(|v| v.base.to_decimal().to_string()).unwrap_or_default(),
        v.map(|v| v.base.currency().code().to_string()).unwrap_or_default(),
        v.map(|v| v.rate_from.to_string()).unwrap_or_default(),
        v.map(|v| v.rate_to.to_string()).unwrap_or_default(),
        v.map(|v| v.rate_date.to_string()).unwrap_or_default(),
        v.map(|v| v.source.code().to_string()).unwrap_or_default(),
        if v.is_some() { "converted".into() } else { WAITING.into() },
    ]);
    row
}

/// The rate in words: `× 1 ÷ 1.25 (erp, 2026-11-27)`.
fn rate_text(c: &CostConversion) -> String {
    let v = &c.conversion;
    format!("× {} ÷ {} ({}, {})", v.rate_to, v.rate_from, v.source, v.rate_date)
}

/// One CSV line (RFC 4180 quoting: a field with a comma, quote or line break is quoted).

/// The net of entries per currency, in words (`16.20 USD, 6.40 EUR`).
fn net(entries: &[CostEntry]) -> String {
    let sums = net_by_currency(entries.iter().map(|e| &e.entry));
    if sums.is_empty() { "nothing".into() } else { sums.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ") }
}

pub async fn costs(command: CostsCommand) -> anyhow::Result<()> {
    match command {
        CostsCommand::List(args) => list(args).await,
        CostsCommand::Show(args) => show(args).await,
        CostsCommand::Post(args) => post(args).await,
        CostsCommand::Batches(args) => batches(args).await,
        CostsCommand::ImportInvoice(args) => import_invoice(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let config = crate::run::load_config_for_reading(&args.config)?;
    if let Some(name) = &args.connection {
        check_connection(&config, name)?;
    }
    let since = args.since.as_deref().map(|d| day("--since", d, false)).transpose()?;
    let until = args.until.as_deref().map(|d| day("--until", d, true)).transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(bad(format!("--since {} is after --until {}", args.since.unwrap_or_default(), args.until.unwrap_or_default())));
    }
    let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
    // Page through by cursor, so a long ledger is never one query.
    const PAGE: u32 = 500;
    let mut found: Vec<CostEntry> = Vec::new();
    let mut after: Option<CostCursor> = None;
    loop {
        let want = if args.limit == 0 { PAGE } else { PAGE.min(args.limit - found.len() as u32) };
        let page = store
            .list_cost_entries(CostEntryFilter {
                connection: args.connection.clone(),
                erp_id: args.order.clone(),
                since,
                until,
                after,
                limit: want,
                ..Default::default()
            })
            .await?;
        let full = page.len() as u32 == want;
        after = page.last().map(CostCursor::after);
        found.extend(page);
        if !full || (args.limit != 0 && found.len() as u32 >= args.limit) {
            break;
        }
    }
    let conversions: HashMap<(String, String), CostConversion> = store
        .list_cost_conversions(CostEntryFilter { connection: args.connection.clone(), erp_id: args.order.clone(), since, until, ..Default::default() })
        .await?
        .into_iter()
        .map(|c| ((c.connection.clone(), c.conversion.entry_key.clone()), c))
        .collect();
    let conv = |e: &CostEntry| conversions.get(&(e.connection.clone(), e.entry_key.clone()));
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&found.iter().map(|e| entry_json(e, conv(e))).collect::<Vec<_>>())?),
        Format::Csv => {
            println!("{}", CSV_HEADER.join(","));
            for e in &found {
                println!("{}", crate::output::csv_line(&csv_row(e, conv(e))));
            }
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        time(e.label.label_created_at),
                        e.label.erp_id.clone().unwrap_or_else(|| "-".into()),
                        e.entry_key.clone(),
                        e.kind.code().into(),
                        e.amount.to_decimal().to_string(),
                        e.amount.currency().code().into(),
                        e.label.carrier.clone(),
                        e.source.code().into(),
                        conv(e).map(|c| c.conversion.base.to_string()).unwrap_or_else(|| WAITING.into()),
                        conv(e).map(rate_text).unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["ID", "LABEL TIME", "ORDER", "ENTRY", "KIND", "AMOUNT", "CURRENCY", "CARRIER", "SOURCE", "BASE", "RATE"], &rows)
            );
            let waiting = found.iter().filter(|e| conv(e).is_none()).count();
            println!(
                "{} entr{}; net {}; {} waiting for a rate",
                found.len(),
                if found.len() == 1 { "y" } else { "ies" },
                net(&found),
                waiting
            );
        }
    }
    Ok(())
}

async fn show(args: ShowArgs) -> anyhow::Result<()> {
    let config = crate::run::load_config_for_reading(&args.config)?;
    if let Some(name) = &args.connection {
        check_connection(&config, name)?;
    }
    let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
    let entry = match args.entry.parse::<i64>() {
        Ok(id) => store.get_cost_entry(id).await?,
        Err(_) => {
            let connection = match (&args.connection, config.connections.as_slice()) {
                (Some(name), _) => name.clone(),
                (None, [only]) => only.name.clone(),
                (None, _) => return Err(bad(format!("cost entry {}: name its --connection (the configuration has several)", args.entry))),
            };
            store.get_cost_entry_by_key(&connection, &args.entry).await?
        }
    };
    let e = entry.with_context(|| format!("no cost entry {} (list them with `shipledger costs list`)", args.entry))?;
    let c = store.get_cost_conversion(&e.connection, &e.entry_key).await?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&entry_json(&e, c.as_ref()))?),
        Format::Csv => {
            println!("{}", CSV_HEADER.join(","));
            println!("{}", crate::output::csv_line(&csv_row(&e, c.as_ref())));
        }
        Format::Table => {
            println!("cost entry {} ({})", e.id, e.entry_key);
            println!("  kind:         {} (revision {})", e.kind, e.revision);
            println!("  charge:       {}", e.charge);
            println!("  amount:       {}", e.amount);
            println!("  label:        {} on {}", e.label.shipment_key, e.connection);
            println!("  order:        {} (ShipStation order {})", e.label.erp_id.as_deref().unwrap_or("none (orphan label)"), e.label.ss_order_id);
            println!("  carrier:      {} {}", e.label.carrier, e.label.service.as_deref().unwrap_or(""));
            println!("  ship date:    {}", e.label.ship_date.map(|d| d.to_string()).unwrap_or_else(|| "-".into()));
            println!("  label made:   {}", time(e.label.label_created_at));
            println!("  happened:     {}", time(e.occurred_at));
            println!("  source:       {}", e.source);
            if let (Some(id), Some(key)) = (e.reverses, &e.reverses_key) {
                println!("  reverses:     entry {id} ({key})");
            }
            println!("  recorded:     {}", time(e.recorded_at));
            match &c {
                None => println!("  base:         {WAITING}"),
                Some(c) => {
                    let v = &c.conversion;
                    println!("  base:         {} (exactly {}, rounded half-even once)", v.base, v.exact);
                    println!("  rate:         {} ÷ {} ({} = amount × rate_to ÷ rate_from)", v.rate_to, v.rate_from, v.base.currency());
                    println!("  rate date:    {} (wanted for {})", v.rate_date, v.wanted_date);
                    println!("  rate source:  {} ({})", v.source, c.source_detail);
                    println!("  converted:    {}", time(c.converted_at));
                }
            }
        }
    }
    Ok(())
}

fn batch_json(b: &CostBatchRecord) -> serde_json::Value {
    json!({
        "batch_key": b.batch_key,
        "connection": b.connection,
        "window_start": b.window.start.to_string(),
        "window_end": b.window.end.to_string(),
        "revision": b.revision,
        "state": b.state.as_str(),
        "total": b.total.to_decimal().to_string(),
        "total_minor": b.total.minor(),
        "currency": b.total.currency().code(),
        "entries": b.entry_count,
        "carried_over": b.carried_over,
        "erp_move_id": b.erp_move_id,
        "detail": b.detail,
        "planned_at": b.planned_at.to_string(),
        "posted_at": b.posted_at.map(|t| t.to_string()),
        "journal": b.journal,
    })
}

fn batch_rows(batches: &[&CostBatchRecord]) -> Vec<Vec<String>> {
    batches
        .iter()
        .map(|b| {
            vec![
                b.connection.clone(),
                b.window.to_string(),
                format!("r{}", b.revision),
                b.state.as_str().into(),
                b.entry_count.to_string(),
                b.carried_over.to_string(),
                b.total.to_string(),
                b.erp_move_id.clone().unwrap_or_else(|| "-".into()),
                b.detail.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

const BATCH_HEADER: &[&str] = &["CONNECTION", "WINDOW", "REV", "STATE", "ENTRIES", "CARRIED", "TOTAL", "ERP MOVE", "DETAIL"];

async fn batches(args: BatchesArgs) -> anyhow::Result<()> {
    let config = crate::run::load_config_for_reading(&args.config)?;
    if let Some(name) = &args.connection {
        check_connection(&config, name)?;
    }
    let state = match args.state.as_deref() {
        None => None,
        Some(s) => Some(BatchState::parse(s).ok_or_else(|| bad(format!("--state {s:?}: use planned, posted or withdrawn")))?),
    };
    let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
    let found = store.list_cost_batches(CostBatchFilter { connection: args.connection.clone(), state, ..Default::default() }).await?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&found.iter().map(batch_json).collect::<Vec<_>>())?),
        Format::Csv => {
            println!("{}", BATCH_HEADER.join(",").to_lowercase().replace(' ', "_"));
            for row in batch_rows(&found.iter().collect::<Vec<_>>()) {
                println!("{}", crate::output::csv_line(&row));
            }
        }
        Format::Table => {
            print!("{}", table(BATCH_HEADER, &batch_rows(&found.iter().collect::<Vec<_>>())));
            println!("{} batch(es)", found.len());
        }
    }
    Ok(())
}

async fn post(args: PostArgs) -> anyhow::Result<()> {
    use shipledger_engine::flows::journals;
    let config = crate::run::load_config(&args.config)?;
    if let Some(name) = &args.connection {
        check_connection(&config, name)?;
    }
    let until: Option<Date> = args
        .until
        .as_deref()
        .map(|d| d.parse().map_err(|e| bad(format!("--until {d:?} is not a date (YYYY-MM-DD): {e}"))))
        .transpose()?;
    let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
    let engine = crate::run::engine(&config, store).await?;
    let mut out = Vec::new();
    let mut unposted = Vec::new();
    for conn in engine.connections.iter().filter(|c| args.connection.as_ref().is_none_or(|n| *n == c.name)) {
        if conn.accounts.is_none() {
            eprintln!("costs post: {}: no [connections.accounts] configured, so it posts no journals", conn.name);
            continue;
        }
        let (converted, report) = journals::post_now(&engine, conn, until).await.with_context(|| format!("{}: posting cost journals", conn.name))?;
        let all = engine.store.list_cost_batches(CostBatchFilter { connection: Some(conn.name.clone()), ..Default::default() }).await?;
        let touched: Vec<&CostBatchRecord> = all
            .iter()
            .filter(|b| report.planned.contains(&b.batch_key) || report.posted.contains(&b.batch_key) || report.withdrawn.contains(&b.batch_key) || report.empty.contains(&b.batch_key))
            .collect();
        unposted.extend(touched.iter().filter(|b| b.state == BatchState::Planned).map(|b| b.batch_key.clone()));
        out.push((conn.name.clone(), converted, report, touched.into_iter().cloned().collect::<Vec<_>>()));
    }
    match args.format {
        Format::Json => {
            let v: Vec<serde_json::Value> = out
                .iter()
                .map(|(name, fx, r, b)| {
                    json!({
                        "connection": name,
                        "converted": fx.converted,
                        "waiting_for_rate": fx.waiting,
                        "batches": b.iter().map(batch_json).collect::<Vec<_>>(),
                        "posted": r.posted,
                        "withdrawn": r.withdrawn,
                        "nothing_to_post": r.empty,
                        "held_for_rate": r.waiting_for_rate,
                        "failed": r.failed,
                        "not_due": r.not_due,
                        "unplaced": r.unplaced,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Table | Format::Csv => {
            let rows: Vec<&CostBatchRecord> = out.iter().flat_map(|(_, _, _, b)| b.iter()).collect();
            if !rows.is_empty() {
                print!("{}", table(BATCH_HEADER, &batch_rows(&rows)));
            }
            for (name, fx, r, _) in &out {
                println!(
                    "costs post: {name}: {} entr{} converted, {} journal(s) posted and read back, {} withdrawn (period not open), {} with nothing to post, {} window(s) not ended yet",
                    fx.converted,
                    if fx.converted == 1 { "y" } else { "ies" },
                    r.posted.len(),
                    r.withdrawn.len(),
                    r.empty.len(),
                    r.not_due,
                );
                for (key, n) in &r.waiting_for_rate {
                    println!("costs post: {name}: {key} is held: {n} entr{} wait for a rate (`shipledger exceptions list` names the pair and date)", if *n == 1 { "y" } else { "ies" });
                }
                for key in &r.failed {
                    println!("costs post: {name}: {key} could not become a journal: its cost_batch_failed exception says why");
                }
                if r.unplaced > 0 {
                    println!("costs post: {name}: {} entr{} have no open ERP period to post into: see the costs_no_open_period exception", r.unplaced, if r.unplaced == 1 { "y" } else { "ies" });
                }
            }
        }
    }
    if !unposted.is_empty() {
        anyhow::bail!(
            "costs post: {} journal(s) planned but not posted yet ({}); the ERP failed or refused: their cost_batch_failed exceptions say why, and they are retried",
            unposted.len(),
            unposted.join(", ")
        );
    }
    Ok(())
}

/// The connection a command names, or the configuration's only one.
pub(crate) fn one_connection(config: &shipledger_engine::config::Config, named: Option<&str>, flag_use: &str) -> anyhow::Result<String> {
    match named {
        Some(name) => {
            check_connection(config, name)?;
            Ok(name.to_string())
        }
        None if config.connections.len() == 1 => Ok(config.connections[0].name.clone()),
        None => {
            let known: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
            Err(bad(format!("{flag_use}: the configuration has {} connections ({}); name one with --connection", known.len(), known.join(", "))))
        }
    }
}

async fn import_invoice(args: ImportInvoiceArgs) -> anyhow::Result<()> {
    use shipledger_core::invoice::{Mapping, read};
    use shipledger_engine::flows::invoices;
    let config = crate::run::load_config(&args.config)?;
    let connection = one_connection(&config, args.connection.as_deref(), "costs import-invoice")?;
    let carrier = args.carrier.trim().to_string();
    if carrier.is_empty() {
        return Err(bad("--carrier is empty: give ShipStation's carrier code of the labels the invoice bills (ups, fedex, stamps_com)".into()));
    }
    let file_name = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).map_err(|e| bad(format!("{file_name}: cannot read the invoice file: {e}")))?;
    let (mapping, mapping_name) = match &args.mapping {
        None => (Mapping::normalised(), None),
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{name}: cannot read the mapping: {e}")))?;
            let mapping: Mapping = toml::from_str(&text).map_err(|e| bad(format!("{name}: not a mapping of invoice columns: {e}")))?;
            (mapping, Some(name))
        }
    };
    let nothing = format!("Nothing from {file_name} was imported; correct it and import the file again.");
    let file = read(&file_name, &bytes, &mapping, mapping_name.as_deref()).map_err(|e| bad(format!("{e}. {nothing}")))?;

    let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
    let engine = crate::run::engine(&config, store).await?;
    let conn = engine.connections.iter().find(|c| c.name == connection).expect("a configured connection");
    let report = match invoices::import(&engine, conn, &carrier, &file).await {
        Ok(report) => report,
        Err(shipledger_engine::EngineError::Store(e @ shipledger_store::StoreError::InvoiceAlreadyImported { .. })) => return Err(bad(e.to_string())),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("{connection}: importing {file_name}"))),
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table | Format::Csv => print_import(&connection, &report),
    }
    Ok(())
}

fn money_text(m: &shipledger_core::Money) -> String {
    format!("{} {}", m.to_decimal(), m.currency().code())
}

fn print_import(connection: &str, r: &shipledger_engine::flows::invoices::ImportReport) {
    let invoices: Vec<Vec<String>> = r
        .invoices
        .iter()
        .map(|i| vec![i.number.clone(), i.date.to_string(), i.state.replace('_', " "), i.charges.to_string(), i.matched.to_string(), i.unmatched.to_string()])
        .collect();
    print!("{}", table(&["INVOICE", "DATE", "STATE", "CHARGES", "MATCHED", "UNMATCHED"], &invoices));
    if !r.adjustments.is_empty() {
        println!();
        let rows: Vec<Vec<String>> =
            r.adjustments.iter().map(|a| vec![a.shipment_key.clone(), a.charge.clone(), money_text(&a.amount), a.invoice.clone(), a.entry_key.clone()]).collect();
        print!("{}", table(&["LABEL", "CHARGE", "ADJUSTMENT", "INVOICE", "ENTRY"], &rows));
    }
    if !r.unmatched.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = r
            .unmatched
            .iter()
            .map(|u| {
                vec![
                    u.tracking_number.clone(),
                    u.invoice.clone(),
                    u.amounts.iter().map(money_text).collect::<Vec<_>>().join(" + "),
                    u.rows.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                    u.why.clone(),
                ]
            })
            .collect();
        print!("{}", table(&["UNMATCHED TRACKING", "INVOICE", "BILLED", "ROWS", "WHY"], &rows));
    }
    if !r.variances.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = r
            .variances
            .iter()
            .map(|v| {
                vec![
                    v.shipment_key.clone(),
                    v.erp_id.clone().unwrap_or_default(),
                    v.tracking_number.clone(),
                    money_text(&v.variance.label),
                    money_text(&v.variance.invoiced),
                    money_text(&v.variance.difference),
                    v.variance.percent.map(|p| format!("{p} %")).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        print!("{}", table(&["VARIANCE LABEL", "ORDER", "TRACKING", "LABEL COST", "INVOICED", "DIFFERENCE", "PERCENT"], &rows));
    }
    if !r.not_billed.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = r
            .not_billed
            .iter()
            .map(|n| vec![n.shipment_key.clone(), n.erp_id.clone().unwrap_or_default(), n.tracking_number.clone().unwrap_or_default(), n.ship_date.map(|d| d.to_string()).unwrap_or_default()])
            .collect();
        print!("{}", table(&["NOT BILLED LABEL", "ORDER", "TRACKING", "SHIP DATE"], &rows));
    }
    let net: Vec<String> = shipledger_core::cost::sum_by_currency(r.adjustments.iter().map(|a| a.amount)).iter().map(money_text).collect();
    let imported = r.invoices.iter().filter(|i| i.state == "imported").count();
    println!();
    println!(
        "costs import-invoice: {connection}: {} invoice(s) imported, {} already imported; {} adjustment(s){}; {} unmatched parcel(s), {} variance(s) raised to finance",
        imported,
        r.invoices.len() - imported,
        r.adjustments.len(),
        if net.is_empty() { String::new() } else { format!(" netting {}", net.join(", ")) },
        r.unmatched.len(),
        r.variances.len(),
    );
    if let Some((from, to)) = r.period {
        println!("costs import-invoice: {connection}: {} live {} label(s) shipped {from}..{to} are on no invoice yet", r.not_billed.len(), r.carrier);
    }
    if !r.adjustments.is_empty() {
        println!("costs import-invoice: {connection}: the adjustments post with the next cost batch of their invoice date (`shipledger costs post`)");
    }
}
