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
use jiff::Timestamp;
use shipledger_engine::config::Policy;
use shipledger_store::{
    EventRecord, ExceptionAct, ExceptionAction, ExceptionAudit, ExceptionAuditFilter, ExceptionFilter, ExceptionRecord, ExceptionState,
    OrderLineRecord, OrderRecord, RecordType, ShipmentFilter, ShipmentRecord, Store, StoreError,
};

use crate::output::{Format, clip, table, time};

#[derive(Subcommand)]
pub enum ExceptionsCommand {
    /// Exceptions, oldest first (live ones, open or acknowledged, by default), with
    /// their age and whether they are past their kind's SLA.
    List(ListArgs),
    /// One exception in full, with its audit log.
    Show(ShowArgs),
    /// "I have seen it and am on it": open → acknowledged (still live).
    Ack(ActArgs),
    /// Give an exception to someone (`--to NAME`), or to nobody (`--nobody`).
    Assign(AssignArgs),
    /// Run the job behind an exception again (a given-up job is re-armed, a waiting
    /// one runs now); the exception closes when the job succeeds.
    Retry(ActArgs),
    /// Edit and retry: correct ShipStation-side fields shipledger owns on the order
    /// behind an exception (`--set service_code=ups_ground`, `--unset package_code`;
    /// carrier_code, service_code, package_code, confirmation, warehouse_id,
    /// internal_notes), then run its job again. The ERP's data (weights, addresses,
    /// lines) is corrected in the ERP, never here.
    Edit(EditArgs),
    /// Mark an exception dealt with (`--note` says how).
    Resolve(NoteArgs),
    /// Leave an exception be (`--note` says why): its kind is not raised again on
    /// its record while it is ignored.
    Ignore(NoteArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    connection: Option<String>,
    /// live (open or acknowledged), open, acknowledged, closed, resolved, ignored or all.
    #[arg(long, default_value = "live")]
    state: String,
    /// ops, finance or admin.
    #[arg(long)]
    owner: Option<String>,
    /// An exception kind, e.g. held_missing_weight.
    #[arg(long)]
    kind: Option<String>,
    /// Only those assigned to this name.
    #[arg(long)]
    assignee: Option<String>,
    /// Only those live past their kind's SLA.
    #[arg(long)]
    overdue: bool,
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

/// Who acts, as the audit log names them.
#[derive(Args)]
pub struct Actor {
    /// Your name for the audit log (default `cli:$USER`).
    #[arg(long = "as", value_name = "NAME")]
    actor: Option<String>,
}

impl Actor {
    fn name(&self) -> String {
        match &self.actor {
            Some(name) if !name.trim().is_empty() => name.trim().to_string(),
            _ => {
                let user = ["USER", "LOGNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
                format!("cli:{}", user.unwrap_or_else(|| "unknown".into()))
            }
        }
    }
}

#[derive(Args)]
pub struct ActArgs {
    #[arg(long)]
    config: PathBuf,
    id: i64,
    /// A note for the audit log.
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    actor: Actor,
}

#[derive(Args)]
pub struct EditArgs {
    #[arg(long)]
    config: PathBuf,
    id: i64,
    /// FIELD=VALUE, as often as needed.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// A field whose override goes (the order is pushed without it again).
    #[arg(long = "unset", value_name = "FIELD")]
    unset: Vec<String>,
    /// A note for the audit log.
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    actor: Actor,
}

#[derive(Args)]
pub struct AssignArgs {
    #[arg(long)]
    config: PathBuf,
    id: i64,
    /// Whom to give it to (a person's or a team's name).
    #[arg(long, conflicts_with = "nobody", required_unless_present = "nobody")]
    to: Option<String>,
    /// Take it off whoever has it.
    #[arg(long)]
    nobody: bool,
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    actor: Actor,
}

#[derive(Args)]
pub struct NoteArgs {
    #[arg(long)]
    config: PathBuf,
    id: i64,
    /// Why (required; kept in the audit log).
    #[arg(long)]
    note: String,
    #[command(flatten)]
    actor: Actor,
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

/// An exception for programs: its record, age, SLA and whether it is overdue.
pub(crate) fn exception_json(e: &ExceptionRecord, policy: Option<&Policy>, now: Timestamp) -> serde_json::Value {
    let sla = policy.and_then(|p| p.sla(e.kind));
    let overdue = policy.and_then(|p| p.overdue(e, now));
    json!({
        "id": e.id,
        "connection": e.connection,
        "kind": e.kind.code(),
        "owner": e.owner.to_string(),
        "severity": e.severity.to_string(),
        "record": format!("{}:{}", e.record_type, e.record_id),
        "state": e.state.as_str(),
        "assignee": e.assignee,
        "job_id": e.job_id,
        "first_seen": e.first_seen.to_string(),
        "last_seen": e.last_seen.to_string(),
        "acknowledged_at": e.acknowledged_at.map(|t| t.to_string()),
        "ended_at": e.ended_at.map(|t| t.to_string()),
        "occurrences": e.occurrences,
        "age_seconds": e.age(now).as_secs(),
        "sla_seconds": sla.map(|d| d.as_secs()),
        "overdue": overdue.is_some(),
        "detail": e.detail,
        "note": e.note,
        "meaning": e.kind.meaning(),
    })
}

fn audit_json(a: &ExceptionAudit) -> serde_json::Value {
    json!({
        "id": a.id, "at": a.at.to_string(), "actor": a.actor, "action": a.action,
        "before": a.before, "after": a.after, "note": a.note,
    })
}

/// What an audit row changed, for people: `state open → acknowledged, assignee - →
/// ben`, a retried job as `job 12 dead → pending`.
fn changes(before: &serde_json::Value, after: &serde_json::Value) -> String {
    let word = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = Vec::new();
    for key in ["state", "assignee"] {
        if before.get(key) != after.get(key) {
            out.push(format!("{key} {} → {}", word(before.get(key).unwrap_or(&serde_json::Value::Null)), word(&after[key])));
        }
    }
    if let Some(job) = after.get("job") {
        out.push(format!("job {} {} → {}", job["id"], word(&before["job"]["state"]), word(&job["state"])));
    }
    out.join(", ")
}

/// `3d 4h`, `2h 5m`, `40s`: an age for people.
pub(crate) fn age(d: jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn policy_of<'a>(config: &'a shipledger_engine::config::Config, connection: &str) -> Option<&'a Policy> {
    config.connections.iter().find(|c| c.name == connection).map(|c| &c.policy)
}

/// A person's action on an exception, by the store's rules; what it did, in words.
async fn act(config: &std::path::Path, id: i64, action: ExceptionAction, note: Option<String>, actor: &Actor) -> anyhow::Result<()> {
    let (store, _) = open_store(config).await?;
    let acted = store
        .act_on_exception(ExceptionAct { id, action: action.clone(), actor: actor.name(), note, at: Timestamp::now() })
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => anyhow::anyhow!("no exception {id} (see `shipledger exceptions list --state all`)"),
            other => anyhow::Error::new(other),
        })?;
    let e = &acted.exception;
    match action {
        ExceptionAction::Acknowledge => println!("exception {id} ({}) is acknowledged by {}", e.kind, acted.audit.actor),
        ExceptionAction::Assign { to: Some(to) } => println!("exception {id} ({}) is assigned to {to}", e.kind),
        ExceptionAction::Assign { to: None } => println!("exception {id} ({}) is assigned to nobody", e.kind),
        ExceptionAction::Retry => {
            let job = &acted.audit.after["job"];
            println!(
                "exception {id} ({}): job {} ({}) runs again now (it was {}); the exception closes when it succeeds",
                e.kind,
                job["id"],
                job["kind"].as_str().unwrap_or_default(),
                acted.audit.before["job"]["state"].as_str().unwrap_or_default(),
            );
        }
        ExceptionAction::Edit { .. } => {
            let job = &acted.audit.after["job"];
            println!(
                "exception {id} ({}): order {} now carries {} in ShipStation; job {} ({}) runs again now (it was {}); the exception closes when it succeeds",
                e.kind,
                e.record_id,
                acted.audit.after["overrides"],
                job["id"],
                job["kind"].as_str().unwrap_or_default(),
                acted.audit.before["job"]["state"].as_str().unwrap_or_default(),
            );
        }
        ExceptionAction::Resolve | ExceptionAction::Ignore => println!("exception {id} ({}) is {}", e.kind, e.state),
    }
    Ok(())
}

pub async fn exceptions(command: ExceptionsCommand) -> anyhow::Result<()> {
    let now = Timestamp::now();
    match command {
        ExceptionsCommand::List(args) => {
            let (store, config) = open_store(&args.config).await?;
            let (state, live) = ExceptionState::filter(&args.state)
                .with_context(|| format!("--state {}: use live, open, acknowledged, closed, resolved, ignored or all", args.state))?;
            let owner = args
                .owner
                .as_deref()
                .map(|o| Owner::parse(o).with_context(|| format!("--owner {o}: use ops, finance or admin")))
                .transpose()?;
            let kind = args
                .kind
                .as_deref()
                .map(|k| {
                    ExceptionKind::parse(k).with_context(|| {
                        let codes: Vec<_> = ExceptionKind::ALL.iter().map(|k| k.code()).collect();
                        format!("--kind {k} is not an exception kind; the kinds are: {}", codes.join(", "))
                    })
                })
                .transpose()?;
            let mut list = store
                .list_exceptions(ExceptionFilter {
                    connection: args.connection,
                    state,
                    live,
                    kind,
                    owner,
                    assignee: args.assignee,
                    limit: if args.overdue { 0 } else { args.limit },
                    ..Default::default()
                })
                .await?;
            if args.overdue {
                list.retain(|e| policy_of(&config, &e.connection).and_then(|p| p.overdue(e, now)).is_some());
                list.truncate(args.limit as usize);
            }
            match args.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &list.iter().map(|e| exception_json(e, policy_of(&config, &e.connection), now)).collect::<Vec<_>>()
                    )?
                ),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|e| {
                            let overdue = policy_of(&config, &e.connection).and_then(|p| p.overdue(e, now));
                            vec![
                                e.id.to_string(),
                                e.connection.clone(),
                                e.kind.code().to_string(),
                                e.owner.to_string(),
                                format!("{}:{}", e.record_type, e.record_id),
                                e.state.as_str().to_string(),
                                e.assignee.clone().unwrap_or_else(|| "-".into()),
                                match overdue {
                                    Some(by) => format!(
                                        "{} (OVERDUE {})",
                                        age(e.age(now)),
                                        age(jiff::SignedDuration::try_from(by).unwrap_or_default())
                                    ),
                                    None => age(e.age(now)),
                                },
                                clip(e.detail.get("message").and_then(|m| m.as_str()).unwrap_or(""), 80),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(&["ID", "CONNECTION", "KIND", "OWNER", "RECORD", "STATE", "ASSIGNEE", "AGE", "WHAT"], &rows)
                    );
                    eprintln!("{} exception(s)", list.len());
                }
            }
        }
        ExceptionsCommand::Show(args) => {
            let (store, config) = open_store(&args.config).await?;
            let e = store
                .get_exception(args.id)
                .await?
                .with_context(|| format!("no exception {} (see `shipledger exceptions list --state all`)", args.id))?;
            let audit = store
                .list_exception_audit(ExceptionAuditFilter { exception_id: Some(e.id), ..Default::default() })
                .await?;
            let policy = policy_of(&config, &e.connection);
            match args.format {
                Format::Json => {
                    let mut out = exception_json(&e, policy, now);
                    out["audit"] = audit.iter().map(audit_json).collect();
                    println!("{}", serde_json::to_string_pretty(&out)?);
                }
                Format::Table => {
                    println!("exception {} ({})", e.id, e.state);
                    println!("  kind:        {} — {}", e.kind.code(), e.kind.meaning());
                    println!("  owner:       {} ({})", e.owner, e.severity);
                    println!("  record:      {}:{} on {}", e.record_type, e.record_id, e.connection);
                    println!("  assignee:    {}", e.assignee.as_deref().unwrap_or("nobody"));
                    println!("  first seen:  {}", time(e.first_seen));
                    println!("  last seen:   {} ({} time(s))", time(e.last_seen), e.occurrences);
                    let sla = policy.and_then(|p| p.sla(e.kind));
                    let overdue = policy.and_then(|p| p.overdue(&e, now));
                    println!(
                        "  age:         {}{}",
                        age(e.age(now)),
                        match (sla, overdue) {
                            (_, Some(by)) => format!(
                                ", OVERDUE by {} (SLA {})",
                                age(jiff::SignedDuration::try_from(by).unwrap_or_default()),
                                age(jiff::SignedDuration::try_from(sla.unwrap_or_default()).unwrap_or_default())
                            ),
                            (Some(sla), None) => format!(" (SLA {})", age(jiff::SignedDuration::try_from(sla).unwrap_or_default())),
                            (None, None) => " (no SLA)".into(),
                        }
                    );
                    if let Some(job) = e.job_id {
                        println!("  job:         {job} (given up; `shipledger exceptions retry {}` runs it again)", e.id);
                    }
                    if let Some(m) = e.detail.get("message").and_then(|m| m.as_str()) {
                        println!("  what:        {m}");
                    }
                    if let Some(fields) = e.detail.get("fields") {
                        println!("  fields:      {fields}");
                    }
                    if let Some(note) = &e.note {
                        println!("  note:        {note}");
                    }
                    println!("  audit log:");
                    for a in &audit {
                        println!(
                            "    {}  {:<12} {:<14} {}{}",
                            time(a.at),
                            a.action,
                            a.actor,
                            changes(&a.before, &a.after),
                            a.note.as_deref().map(|n| format!("  \"{n}\"")).unwrap_or_default()
                        );
                    }
                }
            }
        }
        ExceptionsCommand::Ack(args) => act(&args.config, args.id, ExceptionAction::Acknowledge, args.note, &args.actor).await?,
        ExceptionsCommand::Assign(args) => {
            let to = if args.nobody { None } else { args.to };
            act(&args.config, args.id, ExceptionAction::Assign { to }, args.note, &args.actor).await?
        }
        ExceptionsCommand::Retry(args) => act(&args.config, args.id, ExceptionAction::Retry, args.note, &args.actor).await?,
        ExceptionsCommand::Edit(args) => {
            let mut set = std::collections::BTreeMap::new();
            for pair in &args.set {
                let Some((field, value)) = pair.split_once('=') else {
                    return Err(anyhow::Error::new(crate::run::BadConfig(format!("--set {pair:?}: write FIELD=VALUE, e.g. --set service_code=ups_ground"))));
                };
                set.insert(field.trim().to_string(), Some(value.to_string()));
            }
            for field in &args.unset {
                set.insert(field.trim().to_string(), None);
            }
            act(&args.config, args.id, ExceptionAction::Edit { set }, args.note, &args.actor).await?
        }
        ExceptionsCommand::Resolve(args) => act(&args.config, args.id, ExceptionAction::Resolve, Some(args.note), &args.actor).await?,
        ExceptionsCommand::Ignore(args) => act(&args.config, args.id, ExceptionAction::Ignore, Some(args.note), &args.actor).await?,
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
                "exceptions": exceptions.iter().map(|e| exception_json(e, policy_of(&config, &e.connection), Timestamp::now())).collect::<Vec<_>>(),
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
