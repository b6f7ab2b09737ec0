//! `shipledger exceptions ...` and `shipledger timeline`: what the store knows, for
//! people (tables) and programs (JSON).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_store::{ExceptionFilter, ExceptionRecord, ExceptionState, Store};

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
    let events = store.timeline(&connection, "order", &args.order).await?;
    let exceptions = store
        .list_exceptions(ExceptionFilter {
            connection: Some(connection.clone()),
            record_type: Some("order".into()),
            record_id: Some(args.order.clone()),
            limit: 1000,
            ..Default::default()
        })
        .await?;
    if order.is_none() && events.is_empty() {
        bail!("order {} is unknown on connection {connection}", args.order);
    }
    match args.format {
        Format::Json => {
            let out = json!({
                "order": order.as_ref().map(|o| json!({
                    "erp_id": o.erp_id, "number": o.number, "state": o.state.as_str(), "order_key": o.order_key,
                    "shipstation_order_id": o.ss_order_id, "shipstation_status": o.ss_status,
                    "payment": o.payment, "released_at": o.released_at.map(|t| t.to_string()),
                    "pushed_at": o.pushed_at.map(|t| t.to_string()),
                })),
                "events": events.iter().map(|e| json!({"at": e.at.to_string(), "kind": e.kind, "detail": e.detail})).collect::<Vec<_>>(),
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
                    o.ss_order_id.map(|id| format!("#{id} {}", o.ss_status.clone().unwrap_or_default())).unwrap_or_else(|| "-".into())
                );
            }
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| {
                    let what = e
                        .detail
                        .get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| e.detail.to_string());
                    vec![time(e.at), e.kind.clone(), clip(&what, 100)]
                })
                .collect();
            print!("{}", table(&["AT", "EVENT", "DETAIL"], &rows));
            for e in &exceptions {
                println!("exception {} {} ({}, {})", e.id, e.kind.code(), e.owner, e.state);
            }
        }
    }
    Ok(())
}
