//! `shipledger exceptions ...` and `shipledger timeline`: what the store knows, for
//! people (tables) and programs (JSON). An order's timeline is its whole story: its
//! own events (released, held, pushed, ...) merged by time with those of its shipments
//! (labels, voids, scans, ERP packed / completed / cancelled, failed write-backs), each
//! with its tracking number and in words; the header shows ShipStation's status as the
//! order's live labels leave it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::shipment::{OrderedLine, ShipmentView, ShippedItem, map_lines};
use shipledger_store::{
    EventRecord, RecordType, ExceptionFilter, ExceptionRecord, ExceptionState, OrderLineRecord, OrderRecord, ShipmentFilter, ShipmentRecord, Store,
};

use crate::output::{Format, clip, table, time};

#[derive(Subcommand)]
pub enum ExceptionsCommand {
    /// Exceptions, newest first (open ones by default).
    List(ListArgs),
    /// One exception in full.
    Show(ShowArgs),
    /// Mark an exception dealt with.
    Resolve(StateArgs),
    /// Leave an exception be.
    Ignore(StateArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    connection: Option<String>,
    /// open, closed, resolved, ignored or all.
    #[arg(long, default_value = "open")]
    state: String,
    /// ops, finance or admin.
    #[arg(long)]
    owner: Option<String>,
    /// An exception kind, e.g. held_missing_weight.
    #[arg(long)]
    kind: Option<String>,
    #[arg(long, default_value_t = 200)]
    limit: u32,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct ShowArgs {
    #[arg(long)]
    config: PathBuf,
    id: i64,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct StateArgs {
    #[arg(long)]
    config: PathBuf,
    id: i64,
    /// Why (kept with the exception).
    #[arg(long)]
    note: String,
}

#[derive(Args)]
pub struct TimelineArgs {
    #[arg(long)]
    config: PathBuf,
    /// The connection (the only one when the file has one).
    #[arg(long)]
    connection: Option<String>,
    /// The ERP order id.
    order: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

async fn open_store(config: &std::path::Path) -> anyhow::Result<(std::sync::Arc<dyn Store>, shipledger_engine::config::Config)> {
    let config = crate::run::load_config_for_reading(config)?;
    let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
    Ok((store, config))
}

fn exception_json(e: &ExceptionRecord) -> serde_json::Value {
    json!({
        "id": e.id,
        "connection": e.connection,
        "kind": e.kind.code(),
        "owner": e.owner.to_string(),
        "severity": e.severity.to_string(),
        "record": format!("{}:{}", e.record_type, e.record_id),
        "state": e.state.as_str(),
        "first_seen": e.first_seen.to_string(),
        "last_seen": e.last_seen.to_string(),
        "occurrences": e.occurrences,
        "detail": e.detail,
        "note": e.note,
        "meaning": e.kind.meaning(),
    })
}

pub async fn exceptions(command: ExceptionsCommand) -> anyhow::Result<()> {
    match command {
        ExceptionsCommand::List(args) => {
            let (store, _) = open_store(&args.config).await?;
            let state = match args.state.as_str() {
                "all" => None,
                s => Some(ExceptionState::parse(s).with_context(|| format!("--state {s}: use open, closed, resolved, ignored or all"))?),
            };
            let owner = match args.owner.as_deref() {
                None => None,
                Some("ops") => Some(Owner::Ops),
                Some("finance") => Some(Owner::Finance),
                Some("admin") => Some(Owner::Admin),
                Some(other) => bail!("--owner {other}: use ops, finance or admin"),
            };
            let kind = args
                .kind
                .as_deref()
                .map(|k| ExceptionKind::parse(k).with_context(|| format!("--kind {k} is not an exception kind")))
                .transpose()?;
            let list = store
                .list_exceptions(ExceptionFilter {
                    connection: args.connection,
                    state,
                    kind,
                    owner,
                    limit: args.limit,
                    ..Default::default()
                })
                .await?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&list.iter().map(exception_json).collect::<Vec<_>>())?),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|e| {
                            vec![
                                e.id.to_string(),
                                e.connection.clone(),
                                e.kind.code().to_string(),
                                e.owner.to_string(),
                                format!("{}:{}", e.record_type, e.record_id),
                                e.state.as_str().to_string(),
                                time(e.last_seen),
                                clip(e.detail.get("message").and_then(|m| m.as_str()).unwrap_or(""), 90),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["ID", "CONNECTION", "KIND", "OWNER", "RECORD", "STATE", "LAST SEEN", "WHAT"], &rows));
                    eprintln!("{} exception(s)", list.len());
                }
            }
        }
        ExceptionsCommand::Show(args) => {
            let (store, _) = open_store(&args.config).await?;
            let e = store.get_exception(args.id).await?.with_context(|| format!("no exception {}", args.id))?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&exception_json(&e))?),
                Format::Table => {
                    println!("exception {} ({})", e.id, e.state);
                    println!("  kind:        {} — {}", e.kind.code(), e.kind.meaning());
                    println!("  owner:       {} ({})", e.owner, e.severity);
                    println!("  record:      {}:{} on {}", e.record_type, e.record_id, e.connection);
                    println!("  first seen:  {}", time(e.first_seen));
                    println!("  last seen:   {} ({} time(s))", time(e.last_seen), e.occurrences);
                    if let Some(m) = e.detail.get("message").and_then(|m| m.as_str()) {
                        println!("  what:        {m}");
                    }
                    if let Some(fields) = e.detail.get("fields") {
                        println!("  fields:      {fields}");
                    }
                    if let Some(note) = &e.note {
                        println!("  note:        {note}");
                    }
                }
            }
        }
        ExceptionsCommand::Resolve(args) | ExceptionsCommand::Ignore(args) if args.note.trim().is_empty() => {
            bail!("--note must say why (it is kept with the exception)")
        }
        ExceptionsCommand::Resolve(args) => {
            let (store, _) = open_store(&args.config).await?;
            let e = store.set_exception_state(args.id, ExceptionState::Resolved, &args.note, jiff::Timestamp::now()).await?;
            println!("exception {} is {}", e.id, e.state);
        }
        ExceptionsCommand::Ignore(args) => {
            let (store, _) = open_store(&args.config).await?;
            let e = store.set_exception_state(args.id, ExceptionState::Ignored, &args.note, jiff::Timestamp::now()).await?;
            println!("exception {} is {}", e.id, e.state);
        }
    }
    Ok(())
}

pub async fn timeline(args: TimelineArgs) -> anyhow::Result<()> {
    let (store, config) = open_store(&args.config).await?;
    let connection = match args.connection {
        Some(c) => c,
        None if config.connections.len() == 1 => config.connections[0].name.clone(),
        None => bail!("the file has several connections; name one with --connection"),
    };
    let order = store.get_order(&connection, &args.order).await?;
    // The order's own events and its shipments' (labels, voids, scans, ERP write-backs).
    let events = store.order_timeline(&connection, &args.order).await?;
    let shipments = store
        .list_shipments(ShipmentFilter { connection: Some(connection.clone()), erp_id: Some(args.order.clone()), ..Default::default() })
        .await?;
    let mut exceptions = Vec::new();
    for (record_type, record_id) in std::iter::once(("order", args.order.clone()))
        .chain(shipments.iter().map(|s| ("shipment", s.shipment_key.clone())))
    {
        exceptions.extend(
            store
                .list_exceptions(ExceptionFilter {
                    connection: Some(connection.clone()),
                    record_type: Some(record_type.into()),
                    record_id: Some(record_id),
                    limit: 1000,
                    ..Default::default()
                })
                .await?,
        );
    }
    if order.is_none() && events.is_empty() {
        bail!("order {} is unknown on connection {connection}", args.order);
    }
    let lines = store.order_lines(&connection, &args.order).await?;
    let status = order.as_ref().map(|o| shipstation_status(o, &lines, &shipments));
    match args.format {
        Format::Json => {
            let out = json!({
                "order": order.as_ref().map(|o| json!({
                    "erp_id": o.erp_id, "number": o.number, "state": o.state.as_str(), "order_key": o.order_key,
                    "shipstation_order_id": o.ss_order_id, "shipstation_status": status,
                    "payment": o.payment, "released_at": o.released_at.map(|t| t.to_string()),
                    "pushed_at": o.pushed_at.map(|t| t.to_string()),
                })),
                "shipments": shipments.iter().map(|s| json!({
                    "shipment_key": s.shipment_key, "kind": s.kind.as_str(), "shipstation_order_id": s.ss_order_id,
                    "tracking_number": s.tracking_number, "carrier": s.carrier, "voided": s.voided,
                    "state": s.state.as_str(), "first_scan_at": s.first_scan_at.map(|t| t.to_string()),
                })).collect::<Vec<_>>(),
                "events": events.iter().map(|e| json!({
                    "at": e.event.at.to_string(),
                    "record": record_of(&e.event),
                    "kind": e.event.kind,
                    "tracking_number": e.tracking_number,
                    "message": what_happened(&e.event.detail),
                    "detail": e.event.detail,
                })).collect::<Vec<_>>(),
                "exceptions": exceptions.iter().map(exception_json).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => {
            if let Some(o) = &order {
                println!(
                    "order {} ({}) on {}: {}  orderKey {}  ShipStation {}",
                    o.erp_id,
                    o.number,
                    o.connection,
                    o.state,
                    o.order_key,
                    o.ss_order_id.map(|id| format!("#{id} {}", status.clone().unwrap_or_default())).unwrap_or_else(|| "-".into())
                );
            }
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| {
                    vec![
                        time(e.event.at),
                        e.event.kind.to_string(),
                        e.tracking_number.clone().unwrap_or_else(|| "-".into()),
                        clip(&what_happened(&e.event.detail), 100),
                    ]
                })
                .collect();
            print!("{}", table(&["AT", "EVENT", "TRACKING", "DETAIL"], &rows));
            for e in &exceptions {
                println!(
                    "exception {} {} ({}, {}) on {}:{}: {}",
                    e.id,
                    e.kind.code(),
                    e.owner,
                    e.state,
                    e.record_type,
                    e.record_id,
                    clip(&what_happened(&e.detail), 100)
                );
            }
        }
    }
    Ok(())
}

/// `order` for the order's own events, `shipment:{key}` for its shipments'.
fn record_of(e: &EventRecord) -> String {
    if e.record_type == RecordType::Order { e.record_type.to_string() } else { format!("{}:{}", e.record_type, e.record_id) }
}

/// What ShipStation shows for the order now: `shipped` once live labels (or a
/// fulfillment) carry every physical line, `partially shipped` while some do (a split
/// or a parcel still to come), otherwise the status last written or read back (a
/// voided label puts the order back to awaiting shipment).
fn shipstation_status(order: &OrderRecord, lines: &[OrderLineRecord], shipments: &[ShipmentRecord]) -> String {
    let stored = order.ss_status.clone().unwrap_or_else(|| "-".into());
    let live: Vec<&ShipmentRecord> = shipments.iter().filter(|s| !s.voided).collect();
    if live.is_empty() || stored == "cancelled" {
        return stored;
    }
    let ordered: Vec<OrderedLine> = lines
        .iter()
        .map(|l| OrderedLine { line_id: l.line_id.clone(), sku: l.sku.clone(), quantity: l.quantity, physical: l.physical })
        .collect();
    let views: Vec<ShipmentView> = live
        .iter()
        .map(|s| ShipmentView {
            key: s.shipment_key.clone(),
            voided: false,
            items: s
                .lines
                .iter()
                .map(|l| ShippedItem { line_item_key: l.line_item_key.clone(), sku: l.sku.clone(), quantity: l.quantity })
                .collect(),
        })
        .collect();
    let tracking: Vec<String> = live.iter().filter_map(|s| s.tracking_number.clone()).collect();
    let how = if map_lines(&ordered, &views).complete(&ordered) { "shipped" } else { "partially shipped" };
    format!("{how} ({})", tracking.join(", "))
}

/// An event's or exception's detail in words: its `message`, else the findings or
/// reasons it carries, else its plain fields — never raw JSON.
fn what_happened(detail: &serde_json::Value) -> String {
    if let Some(message) = detail.get("message").and_then(|m| m.as_str()) {
        return message.to_string();
    }
    if let Some(findings) = detail.get("findings").and_then(|f| f.as_array()).filter(|f| !f.is_empty()) {
        return findings
            .iter()
            .map(|f| {
                let what = f.get("detail").and_then(|d| d.as_str()).unwrap_or_default();
                match f.get("kind").and_then(|k| k.as_str()) {
                    Some(kind) if !what.is_empty() => format!("{kind}: {what}"),
                    Some(kind) => kind.to_string(),
                    None => what.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    if let Some(reasons) = detail.get("reasons").and_then(|r| r.as_array()).filter(|r| !r.is_empty()) {
        return reasons.iter().filter_map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
    }
    match detail {
        serde_json::Value::Object(fields) => fields
            .iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some(format!("{k} {s}")),
                serde_json::Value::Number(n) => Some(format!("{k} {n}")),
                serde_json::Value::Bool(b) => Some(format!("{k} {b}")),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
