//! Signed click-redirect links: `GET /c/{tenant}/{ad_id}?url=...&sig=...`.
//!
//! The landing URL is taken from the link only if the tenant signed it, so
//! the edge is never an open redirect. The signature is the hex HMAC-SHA256,
//! keyed with the tenant's `redirect_secret`, of
//! `"{tenant}\n{ad_id}\n{campaign_id}\n{cost_micros}\n{url}"` (absent
//! numbers are empty): cost is signed too, so a link cannot bill more.
//! `click_id` is optional and not signed: a link reused gets a fresh id
//! unless the page gives one (then reloads are deduplicated).

use ring::hmac;

use tally_http::query;
use tally_model::money::check_cost;

/// A verified redirect.
#[derive(Debug, PartialEq, Eq)]
pub struct Redirect {
    pub ad_id: u64,
    pub campaign_id: Option<u64>,
    pub cost_micros: Option<u64>,
    pub url: String,
    pub click_id: Option<String>,
}

/// The canonical text a link's signature covers.
pub fn signed_text(tenant: &str, ad_id: u64, campaign_id: Option<u64>, cost_micros: Option<u64>, url: &str) -> String {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!("{tenant}\n{ad_id}\n{}\n{}\n{url}", opt(campaign_id), opt(cost_micros))
}

/// Signs a link's text (what a tenant's ad server does).
pub fn sign(secret: &str, text: &str) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), text.as_bytes()).as_ref())
}

/// Parses and verifies a redirect link of `tenant` for `ad`.
pub fn verify(secret: &str, tenant: &str, ad: &str, query: Option<&str>) -> Result<Redirect, String> {
    let ad_id = ad.parse::<u64>().map_err(|_| format!("ad id {ad:?} is not an unsigned integer"))?;
    let num = |key: &str| -> Result<Option<u64>, String> {
        query::get(query, key).map(|v| v.parse::<u64>().map_err(|_| format!("{key} {v:?} is not an unsigned integer"))).transpose()
    };
    let (campaign_id, cost_micros) = (num("campaign_id")?, num("cost_micros")?);
    let url = query::get(query, "url").ok_or("url is missing")?;
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("url must be an absolute http(s) URL".into());
    }
    let sig = query::get(query, "sig").ok_or("sig is missing")?;
    let sig = hex::decode(&sig).map_err(|_| "sig is not hex".to_string())?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, signed_text(tenant, ad_id, campaign_id, cost_micros, &url).as_bytes(), &sig).map_err(|_| "signature does not match".to_string())?;
    // After the signature: a tenant may sign any number, billing takes only bounded ones.
    cost_micros.map(check_cost).transpose()?;
    let click_id = query::get(query, "click_id").filter(|c| !c.is_empty());
    Ok(Redirect { ad_id, campaign_id, cost_micros, url, click_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-secret";

    fn link(url: &str, cost: Option<u64>) -> String {
        let sig = sign(SECRET, &signed_text("acme", 7, None, cost, url));
        let cost = cost.map(|c| format!("&cost_micros={c}")).unwrap_or_default();
        format!("url={}{cost}&sig={sig}&click_id=c1", url.replace(':', "%3A").replace('/', "%2F"))
    }

    #[test]
    fn verifies_signed_links_only() {
        let q = link("https://shop.example/p?x=1", Some(250));
        let r = verify(SECRET, "acme", "7", Some(&q)).unwrap();
        assert_eq!((r.ad_id, r.cost_micros, r.url.as_str(), r.click_id.as_deref()), (7, Some(250), "https://shop.example/p?x=1", Some("c1")));
        // Tampered cost, other ad, other tenant, other secret: refused.
        assert!(verify(SECRET, "acme", "7", Some(&q.replace("cost_micros=250", "cost_micros=9999"))).is_err());
        assert!(verify(SECRET, "acme", "8", Some(&q)).is_err());
        assert!(verify(SECRET, "other", "7", Some(&q)).is_err());
        assert!(verify("another-secret-0000", "acme", "7", Some(&q)).is_err());
        assert!(verify(SECRET, "acme", "7", Some("url=https%3A%2F%2Fx")).is_err());
        let js = link("javascript:alert(1)", None);
        assert!(verify(SECRET, "acme", "7", Some(&js)).unwrap_err().contains("absolute"));
    }

    #[test]
    fn a_signed_cost_above_the_maximum_is_refused() {
        use tally_model::money::MAX_COST_MICROS;
        let at_max = link("https://shop.example/", Some(MAX_COST_MICROS));
        assert_eq!(verify(SECRET, "acme", "7", Some(&at_max)).unwrap().cost_micros, Some(MAX_COST_MICROS));
        let above = link("https://shop.example/", Some(u64::MAX));
        assert!(verify(SECRET, "acme", "7", Some(&above)).unwrap_err().contains("per-click maximum"));
    }
}
