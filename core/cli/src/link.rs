//! `tally link sign`: prints a signed click link (`/c/{tenant}/{ad_id}`)
//! that an edge records and redirects, as a tenant's ad server would make it
//! (`tally_edge::ingest::redirect` signs and verifies). The secret comes from
//! the environment or a flag and never appears in the link.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use tally_edge::ingest::redirect::{sign, signed_text};
use tally_model::money::check_cost;

#[derive(Subcommand)]
pub enum LinkCommand {
    /// Print a signed `/c/` link: a click on it is recorded for the ad, then the visitor lands on --url.
    Sign(SignArgs),
}

#[derive(Args)]
pub struct SignArgs {
    /// The edge's public base URL, e.g. https://clicks.example.com.
    #[arg(long, env = "TALLY_EDGE")]
    edge: String,
    /// The tenant whose redirect_secret signs the link.
    #[arg(long)]
    tenant: String,
    /// The tenant's redirect_secret (from its tenants file entry).
    #[arg(long, env = "TALLY_REDIRECT_SECRET", hide_env_values = true)]
    secret: String,
    /// The ad a click on the link counts for.
    #[arg(long)]
    ad: u64,
    /// The campaign of the ad (optional; signed too).
    #[arg(long)]
    campaign: Option<u64>,
    /// What one click costs, in micros (optional; signed, so a link cannot bill more).
    #[arg(long)]
    cost_micros: Option<u64>,
    /// Where the visitor lands (absolute http or https URL).
    #[arg(long)]
    url: String,
}

pub fn run(command: LinkCommand) -> Result<()> {
    match command {
        LinkCommand::Sign(a) => {
            println!("{}", signed_link(&a.edge, &a.tenant, &a.secret, a.ad, a.campaign, a.cost_micros, &a.url)?);
            Ok(())
        }
    }
}

/// The signed link, with every value percent-encoded.
pub fn signed_link(edge: &str, tenant: &str, secret: &str, ad: u64, campaign: Option<u64>, cost: Option<u64>, url: &str) -> Result<String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        bail!("--url must be an absolute http(s) URL without spaces (the edge refuses others): {url:?}");
    }
    if !(edge.starts_with("https://") || edge.starts_with("http://")) {
        bail!("--edge must be the edge's base URL, like https://clicks.example.com: {edge:?}");
    }
    if let Some(c) = cost {
        check_cost(c).map_err(anyhow::Error::msg)?;
    }
    let sig = sign(secret, &signed_text(tenant, ad, campaign, cost, url));
    let mut link = format!("{}/c/{}/{ad}?url={}", edge.trim_end_matches('/'), encode(tenant), encode(url));
    if let Some(c) = campaign {
        link.push_str(&format!("&campaign_id={c}"));
    }
    if let Some(c) = cost {
        link.push_str(&format!("&cost_micros={c}"));
    }
    link.push_str(&format!("&sig={sig}"));
    Ok(link)
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_edge::ingest::redirect::verify;

    #[test]
    fn links_verify_on_the_edge() {
        let url = "https://shop.example/p?x=1&y=a+b#top";
        let link = signed_link("https://edge.example/", "acme", "s3cret-0123456789", 42, Some(7), Some(1500), url).unwrap();
        let (path, query) = link.split_once('?').unwrap();
        assert_eq!(path, "https://edge.example/c/acme/42");
        let r = verify("s3cret-0123456789", "acme", "42", Some(query)).unwrap();
        assert_eq!((r.url.as_str(), r.campaign_id, r.cost_micros), (url, Some(7), Some(1500)));
        assert!(verify("another-secret-000", "acme", "42", Some(query)).is_err());
        let bare = signed_link("http://e", "acme", "k", 1, None, None, "http://x/").unwrap();
        assert!(verify("k", "acme", "1", bare.split_once('?').map(|(_, q)| q)).is_ok());
    }

    #[test]
    fn refuses_what_the_edge_would() {
        assert!(signed_link("https://e", "acme", "k", 1, None, None, "javascript:alert(1)").is_err());
        assert!(signed_link("e.example", "acme", "k", 1, None, None, "https://x/").is_err());
        assert!(signed_link("https://e", "acme", "k", 1, None, Some(u64::MAX), "https://x/").is_err());
    }
}
