//! `tally`: one binary for every Tally process and tool.

mod billing;
mod demo;
mod edge_admin;
mod link;
mod load;
mod plugin;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(name = "tally", version, about = "Tally: exact ad-click counts, near-real-time and billing-grade")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an edge collector: HTTP ingest, dedup, per-second aggregation, spool, shipping to the core.
    /// `tally edge list|retire|reinstate` manage edges through the core instead.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Edge {
        /// Edge configuration file (TOML; see deploy/config/edge.toml).
        #[arg(long, required = true)]
        config: Option<PathBuf>,
        /// Print this edge's id and key fingerprint as the `[[edges]]` entry
        /// the core needs (generating the key on first use), then exit.
        #[arg(long)]
        print_identity: bool,
        #[command(subcommand)]
        admin: Option<edge_admin::EdgeAdminCommand>,
    },
    /// Run the central service: batch receiver, ClickHouse commit, query API and dashboard.
    Core {
        /// Core configuration file (TOML; see deploy/config/core.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a complete local POP: private ClickHouse, core, edge, a demo tenant and live traffic.
    Demo(demo::DemoArgs),
    /// Drive an edge with HTTP load and report events/s and latency.
    Load(load::LoadArgs),
    /// Billing tools: reconciliation of billing, rollups and batch manifests.
    #[command(subcommand)]
    Billing(billing::BillingCommand),
    /// A tenant's filter plugins in the registry: push, shadow, canary, promote, rollback, compare.
    Plugin(plugin::PluginArgs),
    /// Click links: `tally link sign` prints a signed `/c/` link for an ad.
    #[command(subcommand)]
    Link(link::LinkCommand),
}

/// Logs go to stderr: `TALLY_LOG` filters them (default `info`),
/// `TALLY_LOG_FORMAT=json` writes one JSON object per line (for collectors),
/// otherwise plain text, coloured only when stderr is a terminal (so files
/// and journald get no escape codes).
fn init_logging() {
    let filter: Targets = std::env::var("TALLY_LOG").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| "info".parse().expect("static filter"));
    let json = std::env::var("TALLY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let layer = tracing_subscriber::fmt::layer().with_target(false).with_writer(std::io::stderr);
    if json {
        tracing_subscriber::registry().with(layer.json().flatten_event(true)).with(filter).init();
    } else {
        tracing_subscriber::registry().with(layer.with_ansi(std::io::stderr().is_terminal())).with(filter).init();
    }
}

/// A channel that turns true on SIGINT or SIGTERM.
fn shutdown_signal() -> Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging();
    let shutdown = shutdown_signal()?;
    match cli.command {
        Command::Edge { admin: Some(command), .. } => edge_admin::run(command).await,
        Command::Edge { config: Some(config), print_identity: true, admin: None } => {
            let config = tally_edge::config::EdgeConfig::load(&config)?;
            let identity = tally_edge::shipper::identity::load(&config.spool_dir).context("loading the edge's identity")?;
            let fingerprint = tally_edge::shipper::identity::fingerprint(&identity)?;
            println!(
                "# add to the core's configuration (list both keys while rotating), then restart the core\n[[edges]]\nid = {:?}\nkeys = [\"{fingerprint}\"]",
                config.edge_id
            );
            Ok(())
        }
        Command::Edge { config: None, .. } => unreachable!("clap requires --config without a subcommand"),
        Command::Edge { config: Some(config), print_identity: false, admin: None } => {
            let loaded = tally_edge::config::EdgeConfig::load(&config)?;
            tally_edge::run(loaded, config, shutdown).await.context("edge failed")
        }
        Command::Core { config } => {
            let loaded = tally_core::config::CoreConfig::load(&config)?;
            tally_core::run(loaded, config, shutdown).await.context("core failed")
        }
        Command::Demo(args) => demo::run(args, shutdown).await,
        Command::Billing(command) => billing::run(command).await,
        Command::Load(args) => load::run(args).await,
        Command::Plugin(args) => plugin::run(args).await,
        Command::Link(command) => link::run(command),
    }
}
