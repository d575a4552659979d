//! `tally edge list|retire|reinstate`: an operator's view of the edges
//! through the core's admin API (`GET /v1/edges`,
//! `POST /v1/edges/{id}/retire`, `POST /v1/edges/{id}/reinstate`), with the
//! core's `[ops] token`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use tally_http::client::{ApiClient, Reply};
use tally_model::timestamp::format_millis;

#[derive(clap::Args)]
pub struct Conn {
    /// The core's HTTP API (`https://` pins `--ca-cert`; the default is the `listen_http` of deploy/config/core.toml).
    #[arg(long, env = "TALLY_CORE", default_value = "http://127.0.0.1:8081")]
    core: String,
    /// The certificate to trust for an `https://` core (`<data_dir>/core-cert.pem`).
    #[arg(long, env = "TALLY_CORE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The core's `[ops] token` (or TALLY_OPS_TOKEN); `list` also takes a tenant admin key.
    #[arg(long, env = "TALLY_OPS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the core's JSON answer as it is.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum EdgeAdminCommand {
    /// Every known edge: last batch, committed watermark, lag, whether it holds billing finality back.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Retire a drained edge (stopped, nothing half committed): it no longer holds billing finality back.
    Retire {
        /// The edge id (its `[[edges]]` id).
        id: String,
        /// Retire it even while it is connected or has batches started but not committed.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Undo a retirement: its batches commit again and it holds finality back again.
    Reinstate {
        /// The edge id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn run(command: EdgeAdminCommand) -> Result<()> {
    let (EdgeAdminCommand::List { conn } | EdgeAdminCommand::Retire { conn, .. } | EdgeAdminCommand::Reinstate { conn, .. }) = &command;
    let args = conn;
    let token = args.token.clone().context("--token or TALLY_OPS_TOKEN: the core's [ops] token")?;
    let base = args.core.trim_end_matches('/');
    let server_name = base.parse::<http::Uri>().ok().and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()));
    let server_name = server_name.with_context(|| format!("--core {base}: not a URL with a host"))?;
    let client = ApiClient::for_url(base, args.ca_cert.as_deref(), &server_name, None).context("--core")?;
    let reply = match &command {
        EdgeAdminCommand::List { .. } => client.get(&format!("{base}/v1/edges"), Some(&token)).await,
        EdgeAdminCommand::Retire { id, force, .. } => {
            client.post_json(&format!("{base}/v1/edges/{}/retire?force={force}", path_segment(id)), Some(&token), "").await
        }
        EdgeAdminCommand::Reinstate { id, .. } => client.post_json(&format!("{base}/v1/edges/{}/reinstate", path_segment(id)), Some(&token), "").await,
    }
    .with_context(|| format!("cannot reach the core at {base} (is it running? --core or TALLY_CORE names it)"))?;
    let body = answer(&reply)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    match &command {
        EdgeAdminCommand::List { .. } => {
            println!("{:<24} {:>10} {:<24} {:>10} {:>11} {:>9}  state", "edge", "last seq", "watermark", "lag (s)", "uncommitted", "connected");
            for e in body["edges"].as_array().into_iter().flatten() {
                println!("{}", row(e));
            }
            match body["final_before_ms"].as_u64() {
                Some(ms) => println!("billing: every hour before {} is final (or will be at the finalizer's next pass)", format_millis(ms)),
                None => println!("billing: no unretired edge has committed a batch; no hour can become final yet"),
            }
        }
        EdgeAdminCommand::Retire { id, .. } => {
            println!("edge {id} is retired: it no longer holds billing finality back; batches it sends later are refused (kept on its disk) until `tally edge reinstate {id}`");
        }
        EdgeAdminCommand::Reinstate { id, .. } => println!("edge {id} is reinstated: its batches commit and it holds billing finality back again"),
    }
    Ok(())
}

/// The JSON answer, or the core's error as the failure.
fn answer(reply: &Reply) -> Result<serde_json::Value> {
    let body = reply.json().unwrap_or_else(|_| serde_json::Value::String(reply.text()));
    if !reply.status.is_success() {
        let reason = body["error"].as_str().map(str::to_string).unwrap_or_else(|| reply.text());
        bail!("the core refused (HTTP {}): {}", reply.status.as_u16(), reason.trim());
    }
    Ok(body)
}

fn row(e: &serde_json::Value) -> String {
    let num = |v: &serde_json::Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
    let watermark = e["watermark_ms"].as_u64().map_or("-".to_string(), format_millis);
    let state = match (e["retired"].as_bool(), e["holds_finality"].as_bool(), e["enrolled"].as_bool()) {
        (Some(true), _, _) => "retired".to_string(),
        (_, Some(true), _) => "holds finality".to_string(),
        (_, _, Some(true)) => "never committed".to_string(),
        _ => "not enrolled".to_string(),
    };
    format!(
        "{:<24} {:>10} {:<24} {:>10} {:>11} {:>9}  {state}",
        e["edge"].as_str().unwrap_or("?"),
        num(&e["last_batch"]["seq"]),
        watermark,
        num(&e["lag_seconds"]),
        num(&e["uncommitted_batches"]),
        if e["connected"].as_bool() == Some(true) { "yes" } else { "no" },
    )
}

/// An edge id as one URL path segment (ids are plain names; anything else is escaped).
fn path_segment(id: &str) -> String {
    id.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
