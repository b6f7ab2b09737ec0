//! `shipledger reconcile`: run the reconciler now over one connection or all, and
//! print what it found (a table, JSON or CSV), with a progress line on a terminal.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;
use shipledger_engine::flows::reconcile::{self, Progress, ReconcileOptions, ReconcileReport};
use shipledger_engine::schedule::Scheduled;

use crate::output;
use crate::run::BadConfig;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Args)]
pub struct ReconcileArgs {
    #[arg(long)]
    config: PathBuf,
    /// Only this connection (default: every one).
    #[arg(long)]
    connection: Option<String>,
    /// Read ShipStation and the ERP from this date (YYYY-MM-DD, UTC) instead of the
    /// policy's window (`reconcile_window`, default 30 days); the run is full.
    #[arg(long)]
    since: Option<String>,
    /// Read everything in the window again, not only what changed since the last run.
    #[arg(long)]
    full: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// A spinner on a terminal; nothing otherwise.
struct Bar(Option<indicatif::ProgressBar>);

impl Progress for Bar {
    fn step(&self, what: &str, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_message(format!("{what}: {done}"));
        }
    }
}

fn bad(message: String) -> anyhow::Error {
    anyhow::Error::new(BadConfig(message))
}

pub async fn reconcile(args: ReconcileArgs) -> anyhow::Result<()> {
    let config = crate::run::load_config(&args.config)?;
    if let Some(name) = &args.connection
        && !config.connections.iter().any(|c| &c.name == name)
    {
        let known: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
        return Err(bad(format!("--connection {name}: the configuration has no such connection (it has {})", known.join(", "))));
    }
    let since = args
        .since
        .as_deref()
        .map(|d| {
            let date: jiff::civil::Date = d.parse().map_err(|e| bad(format!("--since {d:?} is not a date (YYYY-MM-DD): {e}")))?;
            date.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|e| bad(format!("--since {d}: {e}")))
        })
        .transpose()?;
    let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
    let engine = crate::run::engine(&config, store).await?;
    let options = ReconcileOptions { since, full: args.full };
    let mut reports: Vec<(String, ReconcileReport)> = Vec::new();
    for conn in engine.connections.iter().filter(|c| args.connection.as_ref().is_none_or(|n| *n == c.name)) {
        let bar = Bar(std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix}: {msg}").expect("a valid template"));
            bar.set_prefix(conn.name.clone());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        }));
        // One run per connection at a time: this takes the connection's reconcile pass
        // (a manual run counts as the scheduled one), refused while `serve` runs it.
        let Some(lease) = engine.take_schedule(conn, Scheduled::Reconcile, true).await? else {
            return Err(anyhow::anyhow!("{}: a reconcile run is in progress on another worker (shipledger serve); try again once it ends", conn.name));
        };
        let outcome = reconcile::run(&engine, conn, &options, &bar).await;
        engine.finish_schedule_with(conn, lease, &outcome).await?;
        let report = outcome.with_context(|| format!("{}: reconciling", conn.name))?;
        if let Some(b) = bar.0 {
            b.finish_and_clear();
        }
        reports.push((conn.name.clone(), report));
    }
    print!("{}", render(&reports, args.format));
    Ok(())
}

fn render(reports: &[(String, ReconcileReport)], format: Format) -> String {
    match format {
        Format::Json => {
            let v: Vec<serde_json::Value> = reports
                .iter()
                .map(|(name, r)| {
                    json!({
                        "connection": name,
                        "run": r.run.id,
                        "mode": r.run.mode,
                        "since": r.run.since.to_string(),
                        "stats": r.stats,
                        "findings": r.findings.iter().map(|f| json!({
                            "kind": f.kind.code(),
                            "owner": f.kind.owner().to_string(),
                            "severity": f.kind.severity().to_string(),
                            "record_type": f.record_type,
                            "record_id": f.record_id,
                            "detail": f.detail,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&v).expect("JSON values serialize"))
        }
        Format::Csv => {
            let header: Vec<String> =
                ["connection", "run", "kind", "owner", "severity", "record_type", "record_id", "message"].map(String::from).to_vec();
            let mut out = format!("{}\n", output::csv_line(&header));
            for (name, r) in reports {
                for f in &r.findings {
                    out.push_str(&output::csv_line(&[
                        name.clone(),
                        r.run.id.to_string(),
                        f.kind.code().to_string(),
                        f.kind.owner().to_string(),
                        f.kind.severity().to_string(),
                        f.record_type.clone(),
                        f.record_id.clone(),
                        f.detail["message"].as_str().unwrap_or("").to_string(),
                    ]));
                    out.push('\n');
                }
            }
            out
        }
        Format::Table => {
            let mut out = String::new();
            for (name, r) in reports {
                let s = &r.stats;
                out.push_str(&format!(
                    "{name}: run {} ({}, since {}): {} keys compared; read {} ShipStation orders and {} labels in {} requests, {} ERP orders in {} requests; {} findings, {} exceptions opened, {} closed\n",
                    r.run.id,
                    r.run.mode.as_str(),
                    output::time(r.run.since),
                    s.keys,
                    s.shipstation_orders_read,
                    s.shipstation_labels_read,
                    s.shipstation_requests,
                    s.erp_orders_read,
                    s.erp_requests,
                    r.findings.len(),
                    s.exceptions_opened,
                    s.exceptions_closed
                ));
                for note in &s.notes {
                    out.push_str(&format!("  note: {note}\n"));
                }
                if r.findings.is_empty() {
                    out.push_str("  ERP, ledger and ShipStation agree.\n");
                    continue;
                }
                let rows: Vec<Vec<String>> = r
                    .findings
                    .iter()
                    .map(|f| {
                        vec![
                            f.kind.code().to_string(),
                            f.kind.owner().to_string(),
                            format!("{} {}", f.record_type, f.record_id),
                            output::clip(f.detail["message"].as_str().unwrap_or(""), 110),
                        ]
                    })
                    .collect();
                out.push_str(&output::table(&["KIND", "OWNER", "RECORD", "WHAT"], &rows));
            }
            out
        }
    }
}
