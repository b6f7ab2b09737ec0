//! The `shipledger` command: argument parsing and wiring only. Every behaviour lives in
//! a library crate; this file turns flags into their configuration and runs them.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration. A file that
//! does not load (bad syntax, a bad value, a missing secret) is 2; `check-config
//! --connect` on a file that loads is 1 when any check fails (a system unreachable, a
//! credential refused, something required missing in the ERP), and 0 with warnings
//! alone.

mod bench;
mod close;
mod costs;
mod demo;
mod inspect;
mod output;
mod reconcile;
mod run;
mod sandbox;
mod token;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "shipledger", version, about = "Keeps an ERP and ShipStation in agreement, record by record")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything at once on this machine: sandbox ShipStation and ERP, generated
    /// orders, the engine, a report.
    Demo(demo::DemoArgs),
    /// Measure the engine on a fixed workload (push, ingest, scans, intake) against
    /// the sandboxes, in this process; prints ratios with their targets.
    Bench(bench::BenchArgs),
    /// Run the engine and the HTTP server (health, metrics) from a configuration file.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the engine without the HTTP server; `--once` does one pass and exits.
    Sync {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        once: bool,
    },
    /// Check a configuration file (and that its secrets are in the environment);
    /// `--connect` also reaches every system it names, read only, and reports what
    /// works and what does not.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
        /// Reach the ERP and ShipStation with the configured credentials (nothing is
        /// written); exit 1 when any check fails.
        #[arg(long)]
        connect: bool,
    },
    /// API tokens for `/api/v1`: a role (viewer, operator, admin) and the connections
    /// each may see; only their hashes are stored.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Exceptions: what needs a person, and whose.
    #[command(subcommand)]
    Exceptions(inspect::ExceptionsCommand),
    /// The cost ledger: each label's charges in their own currency, revisions and
    /// void reversals (read only; FX, journals and `costs post` are to come).
    #[command(subcommand)]
    Costs(costs::CostsCommand),
    /// An order's timeline: what happened to it, when and why.
    Timeline(inspect::TimelineArgs),
    /// Compare the ERP, our ledger and ShipStation order by order now, and name every
    /// record that does not agree (each an owned exception).
    Reconcile(reconcile::ReconcileArgs),
    /// A connection's month as finance closes it: what shipped, what it cost, what is
    /// posted, carrier invoices, shipping margin, drift and open exceptions, and a
    /// verdict (ready to close, or each blocker with its record and owner).
    CloseReport(close::CloseReportArgs),
    /// Local stand-ins for the systems shipledger talks to.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Serve a faithful local ShipStation (v1, v2, webhooks, control API under /_sandbox/).
    Shipstation(sandbox::ShipstationArgs),
    /// Serve a sandbox ERP (sales orders, payments, products, stock, fulfilments,
    /// journals, FX), optionally with generated orders.
    Erp(sandbox::ErpArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = |default: &str| {
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
    };
    // Every command logs to stderr, except the demo, whose stderr is its progress
    // display: its logs go to a file through a non-blocking writer, flushed when the
    // guard drops at the end of `main`. The bench logs warnings only: its stderr
    // carries its own progress lines.
    let _log_guard = match &cli.command {
        Command::Demo(args) => {
            let path = args.log_path();
            match demo::log_writer(&path) {
                Ok((writer, guard)) => {
                    tracing_subscriber::fmt().with_env_filter(filter("info")).with_ansi(false).with_writer(writer).init();
                    Some(guard)
                }
                Err(e) => {
                    eprintln!("error: cannot write the demo's log to {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
        Command::Bench(_) => {
            tracing_subscriber::fmt().with_env_filter(filter("warn")).with_writer(std::io::stderr).init();
            None
        }
        _ => {
            tracing_subscriber::fmt().with_env_filter(filter("info")).with_writer(std::io::stderr).init();
            None
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Serve { config } => run::serve(&config).await,
            Command::Sync { config, once } => run::sync(&config, once).await,
            Command::CheckConfig { config, connect } => run::check_config(&config, connect).await,
            Command::Exceptions(command) => inspect::exceptions(command).await,
            Command::Tokens(command) => tokens::tokens(command).await,
            Command::Timeline(args) => inspect::timeline(args).await,
            Command::Costs(command) => costs::costs(command).await,
            Command::Reconcile(args) => reconcile::reconcile(args).await,
            Command::CloseReport(args) => close::close_report(args).await,
            Command::Sandbox(SandboxCommand::Shipstation(args)) => sandbox::shipstation(args).await,
            Command::Sandbox(SandboxCommand::Erp(args)) => sandbox::erp(args).await,
        }
    });
    // Whatever is still running (a gauge refresh, a blocking task) is not waited for
    // longer than this: `serve` and `sync` have drained by now, and a stop must end
    // the process within seconds.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<run::BadConfig>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
