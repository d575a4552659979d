//! `tally plugin ...`: a tenant admin's tool for the plugin registry on the
//! core (`POST /v1/plugins`, `POST /v1/plugins/rollout`, ...). Every call
//! carries the tenant's admin key, which names the tenant; over `https://`
//! the core's certificate is pinned (`--ca-cert`), so the key cannot be read
//! on the way.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use http::Method;

use tally_http::client::{ApiClient, Reply};

#[derive(clap::Args)]
pub struct PluginArgs {
    /// The core's HTTP API (`https://` pins `--ca-cert`).
    #[arg(long, env = "TALLY_CORE", default_value = "http://127.0.0.1:8080", global = true)]
    core: String,
    /// The certificate (or CA) to trust for an `https://` core: the core's own
    /// (`<data_dir>/core-cert.pem`).
    #[arg(long, env = "TALLY_CORE_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// The name the core's certificate is issued for (default: the host in `--core`).
    #[arg(long, env = "TALLY_CORE_SERVER_NAME", global = true)]
    server_name: Option<String>,
    /// The tenant's admin key (or TALLY_ADMIN_KEY).
    #[arg(long, env = "TALLY_ADMIN_KEY", global = true, hide_env_values = true)]
    key: Option<String>,
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(clap::Subcommand)]
enum PluginCommand {
    /// Upload a component: validated by the core, stored as the next version.
    Push {
        /// The component (.wasm).
        file: PathBuf,
        /// Then make it active right away.
        #[arg(long)]
        activate: bool,
    },
    /// Make a version active (no candidate left).
    Activate { version: u32 },
    /// Run a version in shadow: verdicts recorded and compared, not applied.
    Shadow { version: u32 },
    /// Apply a version's verdicts to a percentage of clicks.
    Canary {
        version: u32,
        #[arg(long)]
        percent: u8,
    },
    /// The candidate becomes active.
    Promote,
    /// Drop the candidate.
    Rollback,
    /// What a failing plugin's batches get: open or closed.
    Policy { policy: String },
    /// Memory, time per call and output for the tenant's plugins (edges
    /// cap them).
    Limits {
        #[arg(long)]
        memory_mb: u32,
        #[arg(long)]
        timeout_ms: u32,
        /// Tags per click on average (0-4; default 4, the contract's maximum).
        #[arg(long)]
        tags_per_click: Option<u32>,
    },
    /// Versions and rollout state.
    Status,
    /// Active vs candidate verdicts over a range (default: the last hour).
    Compare {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
}

fn print(reply: Reply) -> Result<()> {
    let text = match reply.json() {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| reply.text()),
        Err(_) => reply.text(),
    };
    if !reply.status.is_success() {
        bail!("HTTP {}: {}", reply.status, text.trim());
    }
    println!("{text}");
    Ok(())
}

pub async fn run(args: PluginArgs) -> Result<()> {
    let key = args.key.context("--key or TALLY_ADMIN_KEY: the tenant's admin key")?;
    let base = args.core.trim_end_matches('/');
    let host = || base.parse::<http::Uri>().ok().and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()));
    let server_name = args.server_name.or_else(host).with_context(|| format!("--core {base}: not a URL with a host"))?;
    let client = ApiClient::for_url(base, args.ca_cert.as_deref(), &server_name, None).context("--core")?;
    let rollout = |action: serde_json::Value| {
        let (client, key, url) = (client.clone(), key.clone(), format!("{base}/v1/plugins/rollout"));
        async move { client.post_json(&url, Some(&key), action.to_string()).await.context("rollout") }
    };
    match args.command {
        PluginCommand::Push { file, activate } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let url = format!("{base}/v1/plugins?name={}", name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-' && c != '_', "_"));
            let reply = client.send(Method::POST, &url, Some(&key), Some("application/octet-stream"), bytes).await.context("upload")?;
            let version = reply.json().ok().and_then(|v| v["version"].as_u64());
            print(reply)?;
            if let (true, Some(version)) = (activate, version) {
                print(rollout(serde_json::json!({"action": "activate", "version": version})).await?)?;
            }
            Ok(())
        }
        PluginCommand::Activate { version } => print(rollout(serde_json::json!({"action": "activate", "version": version})).await?),
        PluginCommand::Shadow { version } => print(rollout(serde_json::json!({"action": "shadow", "version": version})).await?),
        PluginCommand::Canary { version, percent } => print(rollout(serde_json::json!({"action": "canary", "version": version, "percent": percent})).await?),
        PluginCommand::Promote => print(rollout(serde_json::json!({"action": "promote"})).await?),
        PluginCommand::Rollback => print(rollout(serde_json::json!({"action": "rollback"})).await?),
        PluginCommand::Policy { policy } => print(rollout(serde_json::json!({"action": "policy", "policy": policy})).await?),
        PluginCommand::Limits { memory_mb, timeout_ms, tags_per_click } => {
            print(rollout(serde_json::json!({"action": "limits", "memory_mb": memory_mb, "timeout_ms": timeout_ms, "tags_per_click": tags_per_click})).await?)
        }
        PluginCommand::Status => print(client.get(&format!("{base}/v1/plugins"), Some(&key)).await?),
        PluginCommand::Compare { from, to } => {
            let now = tally_model::timestamp::now_ms();
            let from = from.unwrap_or_else(|| (now - 3_600_000).to_string());
            let to = to.unwrap_or_else(|| (now + 60_000).to_string());
            print(client.get(&format!("{base}/v1/plugins/comparison?from={from}&to={to}&step=1m"), Some(&key)).await?)
        }
    }
}
