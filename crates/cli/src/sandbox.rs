//! `shipledger sandbox ...`: the local stand-ins for ShipStation and the ERP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
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

