//! `shipledger sandbox ...`: the local stand-ins for ShipStation and the ERP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig};
use shipledger_sandbox::{Sandbox, SandboxConfig, SimulationConfig};

#[derive(Args)]
pub struct ShipstationArgs {
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

pub async fn shipstation(args: ShipstationArgs) -> anyhow::Result<()> {
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
    crate::shutdown_signal().await;
    eprintln!("stopping the sandbox");
    sandbox.shutdown().await;
    Ok(())
}


#[derive(Args)]
pub struct ErpArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: SocketAddr,
    /// Bearer key the ERP's API accepts.
    #[arg(long, env = "SHIPLEDGER_SANDBOX_ERP_KEY", default_value = "sandbox-erp-key", hide_env_values = true)]
    api_key: String,
    /// The company's base currency.
    #[arg(long, default_value = "GBP")]
    base_currency: String,
    /// Keep state in this JSON file across restarts.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Seed of the generated orders.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Generate this many realistic orders (bad ones included) at start.
    #[arg(long, default_value_t = 0)]
    orders: usize,
}

pub async fn erp(args: ErpArgs) -> anyhow::Result<()> {
    let base_currency = shipledger_core::Currency::parse(&args.base_currency)
        .map_err(|e| anyhow::Error::new(crate::run::BadConfig(format!("--base-currency: {e}"))))?;
    let config = SandboxErpConfig { api_key: args.api_key, base_currency, seed: args.seed, state_path: args.state };
    let erp = SandboxErp::start(config, args.listen).await?;
    println!("sandbox erp listening on {}", erp.base_url());
    println!("  api: {0}/api/orders   control: {0}/_sandbox/stats", erp.base_url());
    if args.orders > 0 {
        let plan = Traffic::plan(TrafficConfig { orders: args.orders, seed: args.seed, ..TrafficConfig::default() });
        plan.apply(&erp.base_url()).await?;
        let summary = plan.summary();
        println!("  generated {} orders: {:?}", summary.generated, summary.by_expected);
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    crate::shutdown_signal().await;
    eprintln!("stopping the sandbox ERP");
    erp.shutdown().await;
    Ok(())
}
