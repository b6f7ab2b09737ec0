//! The `shipledger` command: argument parsing and wiring only. Every behaviour lives in
//! a library crate; this file turns flags into their configuration and runs them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shipledger_sandbox::{Sandbox, SandboxConfig, SimulationConfig};

#[derive(Parser)]
#[command(name = "shipledger", version, about = "Keeps an ERP and ShipStation in agreement, record by record")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Local stand-ins for the systems shipledger talks to.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Serve a faithful local ShipStation (v1, v2, webhooks, control API under /_sandbox/).
    Shipstation(ShipstationArgs),
}

#[derive(Args)]
struct ShipstationArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// v1 API key accepted by Basic auth.
    #[arg(long, env = "SHIPLEDGER_SANDBOX_API_KEY", default_value = "sandbox-key", hide_env_values = true)]
    api_key: String,
    /// v1 API secret accepted by Basic auth.
    #[arg(long, env = "SHIPLEDGER_SANDBOX_API_SECRET", default_value = "sandbox-secret", hide_env_values = true)]
    api_secret: String,
    /// v2 API-Key header value.
    #[arg(long, env = "SHIPLEDGER_SANDBOX_V2_API_KEY", default_value = "sandbox-v2-key", hide_env_values = true)]
    v2_api_key: String,
    /// v1 requests allowed per window.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: u32,
    /// v1 rate-limit window, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    rate_window: u64,
    /// Keep state in this JSON file across restarts.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Seed of every random choice (simulator, faults).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start the simulated warehouse and carrier (tune it with PUT /_sandbox/simulation).
    #[arg(long)]
    simulate: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sandbox(SandboxCommand::Shipstation(args)) => sandbox_shipstation(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn sandbox_shipstation(args: ShipstationArgs) -> anyhow::Result<()> {
    let config = SandboxConfig {
        api_key: args.api_key,
        api_secret: args.api_secret,
        v2_api_key: args.v2_api_key,
        rate_limit: args.rate_limit,
        rate_window: Duration::from_secs(args.rate_window),
        state_path: args.state,
        seed: args.seed,
        simulation: args.simulate.then(|| SimulationConfig { enabled: true, ..Default::default() }),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config, args.listen).await?;
    println!("sandbox shipstation listening on {}", sandbox.base_url());
    println!("  v1: {0}/orders   v2: {0}/v2/labels   control: {0}/_sandbox/stats", sandbox.base_url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    shutdown_signal().await;
    eprintln!("stopping the sandbox");
    sandbox.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
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
