//! `tally plugin ...`: a tenant admin's tool for the plugin registry on the
//! core (`POST /v1/plugins`, `POST /v1/plugins/rollout`, ...). Every call
//! carries the tenant's admin key, which names the tenant; over `https://`
//! the core's certificate is pinned (`--ca-cert`), so the key cannot be read
//! on the way. Answers print as tables (`plugin/table.rs`), or as the
//! core's JSON with `-o json`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use http::Method;

use tally_http::client::{ApiClient, Reply};

mod table;

#[derive(clap::Args)]
#[command(after_help = ROLLOUT)]
pub struct PluginArgs {
    /// The core's HTTP API: `http://` for its `listen_http` (on the core's
    /// host, as in deploy/config/core.toml), `https://` for `listen_https`
    /// (pins `--ca-cert`).
    #[arg(long, env = "TALLY_CORE", default_value = "http://127.0.0.1:8081", global = true)]
    core: String,
    /// The certificate (or CA) to trust for an `https://` core: the core's own
    /// (`<data_dir>/core-cert.pem`).
    #[arg(long, env = "TALLY_CORE_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// The name the core's certificate is issued for (default: the host in `--core`).
    #[arg(long, env = "TALLY_CORE_SERVER_NAME", global = true)]
    server_name: Option<String>,
    /// The tenant's admin key (or TALLY_ADMIN_KEY); it names the tenant.
    #[arg(long, env = "TALLY_ADMIN_KEY", global = true, hide_env_values = true)]
    key: Option<String>,
    /// Output: tables for people, or the core's JSON answers for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    #[command(subcommand)]
    command: PluginCommand,
}

const ROLLOUT: &str = "Rollout: `push` a version, then `activate` it, or run it as the candidate next to the active one:
  shadow VERSION               verdicts recorded and compared (`compare`), never applied
  canary VERSION --percent N   its verdicts applied to N % of clicks, chosen by click id
then `promote` (the candidate becomes active) or `rollback` (dropped).
When a plugin fails, `policy open` counts the clicks as kept (tagged filter=failed_open),
`policy closed` refuses the request (503, Retry-After) so the client sends it again.";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// Human-readable tables.
    Table,
    /// The core's JSON answers, one document per call.
    Json,
}

/// What a failing plugin's batches get.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Policy {
    /// Clicks are counted as if the filter kept them (tagged `filter=failed_open`).
    Open,
    /// The request is refused (503, Retry-After); the client sends it again.
    Closed,
}

/// The steps of a rollout ([`ROLLOUT`]).
#[derive(clap::Subcommand)]
enum PluginCommand {
    /// Upload a component: validated by the core, stored as the next version.
    Push {
        /// The component (.wasm), e.g. plugins/target/wasm32-wasip2/release/tally_plugin_bot_filter.wasm.
        file: PathBuf,
        /// Then make it active right away.
        #[arg(long)]
        activate: bool,
    },
    /// Make a version active (no candidate left).
    Activate {
        /// The version number (`status` lists them).
        version: u32,
    },
    /// Run a version in shadow: verdicts recorded and compared, not applied.
    Shadow {
        /// The version number (`status` lists them).
        version: u32,
    },
    /// Apply a version's verdicts to a percentage of clicks (chosen by click id).
    Canary {
        /// The version number (`status` lists them).
        version: u32,
        /// Share of clicks whose verdict comes from this version (1-100).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
        percent: u8,
    },
    /// The candidate becomes active.
    Promote,
    /// Drop the candidate; the active version carries on alone.
    Rollback,
    /// What a failing plugin's batches get.
    Policy {
        /// open or closed.
        #[arg(value_enum)]
        policy: Policy,
    },
    /// Memory, time per call and output for the tenant's plugins (edges
    /// cap them at their own maxima).
    Limits {
        /// Memory per plugin instance, MiB.
        #[arg(long)]
        memory_mb: u32,
        /// Time per call, ms.
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
        /// Start: ms since the epoch or RFC 3339 (default: an hour ago).
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive: ms or RFC 3339 (default: now).
        #[arg(long)]
        to: Option<String>,
    },
}

/// What a reply holds, for its table.
#[derive(Clone, Copy)]
enum Shape {
    Pushed,
    State,
    Comparison,
}

fn print(reply: Reply, output: Output, shape: Shape) -> Result<()> {
    let json = reply.json();
    if !reply.status.is_success() {
        let text = match &json {
            Ok(v) => v["error"].as_str().map_or_else(|| v.to_string(), str::to_string),
            Err(_) => reply.text(),
        };
        bail!("the core answered HTTP {}: {}", reply.status, text.trim());
    }
    let v = json.with_context(|| format!("the core's answer is not JSON: {}", reply.text()))?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Output::Table => print!(
            "{}",
            match shape {
                Shape::Pushed => table::pushed(&v),
                Shape::State => table::state(&v),
                Shape::Comparison => table::comparison(&v),
            }
        ),
    }
    Ok(())
}

pub async fn run(args: PluginArgs) -> Result<()> {
    let key = args.key.context("--key or TALLY_ADMIN_KEY: the tenant's admin key")?;
    let output = args.output;
    let base = args.core.trim_end_matches('/');
    let host = || base.parse::<http::Uri>().ok().and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()));
    let server_name = args.server_name.or_else(host).with_context(|| format!("--core {base}: not a URL with a host"))?;
    let client = ApiClient::for_url(base, args.ca_cert.as_deref(), &server_name, None).context("--core")?;
    let rollout = |action: serde_json::Value| {
        let (client, key, url) = (client.clone(), key.clone(), format!("{base}/v1/plugins/rollout"));
        async move { client.post_json(&url, Some(&key), action.to_string()).await.context("rollout") }
    };
    let state = |reply| print(reply, output, Shape::State);
    match args.command {
        PluginCommand::Push { file, activate } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let url = format!("{base}/v1/plugins?name={}", name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-' && c != '_', "_"));
            let reply = client.send(Method::POST, &url, Some(&key), Some("application/octet-stream"), bytes).await.context("upload")?;
            let version = reply.json().ok().and_then(|v| v["version"].as_u64());
            print(reply, output, Shape::Pushed)?;
            if let (true, Some(version)) = (activate, version) {
                state(rollout(serde_json::json!({"action": "activate", "version": version})).await?)?;
            }
            Ok(())
        }
        PluginCommand::Activate { version } => state(rollout(serde_json::json!({"action": "activate", "version": version})).await?),
        PluginCommand::Shadow { version } => state(rollout(serde_json::json!({"action": "shadow", "version": version})).await?),
        PluginCommand::Canary { version, percent } => state(rollout(serde_json::json!({"action": "canary", "version": version, "percent": percent})).await?),
        PluginCommand::Promote => state(rollout(serde_json::json!({"action": "promote"})).await?),
        PluginCommand::Rollback => state(rollout(serde_json::json!({"action": "rollback"})).await?),
        PluginCommand::Policy { policy } => {
            let policy = match policy {
                Policy::Open => "open",
                Policy::Closed => "closed",
            };
            state(rollout(serde_json::json!({"action": "policy", "policy": policy})).await?)
        }
        PluginCommand::Limits { memory_mb, timeout_ms, tags_per_click } => {
            state(rollout(serde_json::json!({"action": "limits", "memory_mb": memory_mb, "timeout_ms": timeout_ms, "tags_per_click": tags_per_click})).await?)
        }
        PluginCommand::Status => state(client.get(&format!("{base}/v1/plugins"), Some(&key)).await?),
        PluginCommand::Compare { from, to } => {
            let now = tally_model::timestamp::now_ms();
            let from = from.unwrap_or_else(|| (now - 3_600_000).to_string());
            let to = to.unwrap_or_else(|| now.to_string());
            print(client.get(&format!("{base}/v1/plugins/comparison?from={from}&to={to}&step=1m"), Some(&key)).await?, output, Shape::Comparison)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[derive(clap::Parser)]
    struct Plugin {
        #[command(flatten)]
        args: super::PluginArgs,
    }

    /// Every argument of every step says what it is.
    #[test]
    fn every_argument_has_help() {
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                assert!(arg.get_help().is_some() || arg.get_id() == "help", "{path} {} has no help", arg.get_id());
            }
            for sub in command.get_subcommands() {
                assert!(sub.get_about().is_some(), "{path} {} has no help", sub.get_name());
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut command = Plugin::command();
        command.build();
        check(&command, "tally plugin");
        let policy = command.find_subcommand("policy").unwrap().get_arguments().find(|a| a.get_id() == "policy").unwrap();
        assert_eq!(policy.get_possible_values().iter().map(|v| v.get_name().to_string()).collect::<Vec<_>>(), ["open", "closed"]);
    }
}
