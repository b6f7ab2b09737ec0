//! `shipledger tokens create|list|revoke`: API tokens from a terminal. A new token's
//! secret is printed once (stdout, nothing else on it, so `$(...)` captures it); the
//! store keeps only its SHA-256.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use shipledger_server::api::tokens::{TokenView, prepare};

use crate::output::{Format, table};

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Make a token and print its secret (shown this once).
    Create(CreateArgs),
    /// Every token, revoked ones too (never their secrets).
    List(ListArgs),
    /// Revoke a live token, by id or name: it opens nothing from now on.
    Revoke(RevokeArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    config: PathBuf,
    /// Who or what holds it (unique among live tokens), e.g. `dashboard`, `ana`.
    #[arg(long)]
    name: String,
    /// viewer (reads), operator (also acts on exceptions) or admin (also manages tokens).
    #[arg(long)]
    role: String,
    /// A connection it may see (repeat for more); `--all-connections` for every one.
    #[arg(long = "connection", required_unless_present = "all_connections")]
    connections: Vec<String>,
    #[arg(long, conflicts_with = "connections")]
    all_connections: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[arg(long)]
    config: PathBuf,
    /// The token's id or (live) name.
    token: String,
}

pub async fn tokens(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create(args) => {
            let config = crate::run::load_config_for_reading(&args.config)?;
            let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
            let known: Vec<String> = config.connections.iter().map(|c| c.name.clone()).collect();
            let connections = if args.all_connections { vec!["*".to_string()] } else { args.connections };
            let (new, secret) = prepare(&args.name, &args.role, &connections, &known).map_err(|p| anyhow::anyhow!("{}", p.detail))?;
            let record = store.create_api_token(new, jiff::Timestamp::now()).await?;
            let view = TokenView::from(&record);
            eprintln!(
                "token {} ({}, {}, sees {}) created; its secret is below and is not shown again:",
                view.id,
                view.name,
                view.role,
                view.connections.join(", ")
            );
            println!("{secret}");
        }
        TokensCommand::List(args) => {
            let config = crate::run::load_config_for_reading(&args.config)?;
            let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
            let list: Vec<TokenView> = store.list_api_tokens().await?.iter().map(TokenView::from).collect();
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                t.name.clone(),
                                t.role.clone(),
                                t.connections.join(","),
                                format!("{}…", t.prefix),
                                t.created_at.clone(),
                                t.last_used_at.clone().unwrap_or_else(|| "-".into()),
                                t.revoked_at.clone().map(|r| format!("revoked {r}")).unwrap_or_else(|| "live".into()),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["ID", "NAME", "ROLE", "CONNECTIONS", "TOKEN", "CREATED", "LAST USED", "STATE"], &rows));
                }
            }
        }
        TokensCommand::Revoke(args) => {
            let config = crate::run::load_config_for_reading(&args.config)?;
            let store = shipledger_store::open(&config.store_url).await.context("opening the store")?;
            let live: Vec<_> = store.list_api_tokens().await?.into_iter().filter(|t| t.revoked_at.is_none()).collect();
            let found = match args.token.parse::<i64>() {
                Ok(id) => live.iter().find(|t| t.id == id),
                Err(_) => live.iter().find(|t| t.name == args.token),
            };
            let Some(token) = found else {
                bail!("no live token {:?} (see `shipledger tokens list`)", args.token);
            };
            let revoked = store.revoke_api_token(token.id, jiff::Timestamp::now()).await?;
            println!("token {} ({}) is revoked", revoked.id, revoked.name);
        }
    }
    Ok(())
}
