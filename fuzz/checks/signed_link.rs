// Signed click links (`tally_edge::ingest::redirect`): `verify` accepts a
// link exactly when its signature is `sign`'s over what it returns. Needs
// `input.rs` included before it.

use tally_edge::ingest::redirect::{sign, signed_text, verify};
use tally_http::query;
use tally_model::money::MAX_COST_MICROS;

const SECRET: &str = "fuzz-secret-0123456789";

fn percent_encoded(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn valid_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://")) && !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

pub fn check(data: &[u8]) {
    let mut input = Input(data);
    if input.byte() & 1 == 0 {
        // Any link: accepted only with the signature of what it yields.
        let ad = input.text();
        let link = String::from_utf8_lossy(input.rest()).into_owned();
        if let Ok(r) = verify(SECRET, "acme", &ad, Some(&link)) {
            let sig = query::get(Some(&link), "sig").expect("verified links are signed").to_ascii_lowercase();
            assert_eq!(sig, sign(SECRET, &signed_text("acme", r.ad_id, r.campaign_id, r.cost_micros, &r.url)), "verify accepted what sign did not produce");
            assert!(valid_url(&r.url) && r.cost_micros.is_none_or(|c| c <= MAX_COST_MICROS));
        }
        return;
    }
    // A link signed as a tenant's ad server does: accepted with what was
    // signed (unless its url or cost is refused), and refused once tampered.
    let ad_id = input.num();
    let campaign_id = (input.byte() & 1 == 1).then(|| input.num());
    let cost_micros = (input.byte() & 1 == 1).then(|| input.num());
    let url = format!("{}{}", ["https://", "http://", ""][input.byte() as usize % 3], input.text());
    let sig = sign(SECRET, &signed_text("acme", ad_id, campaign_id, cost_micros, &url));
    let opt = |key: &str, v: Option<u64>| v.map(|v| format!("&{key}={v}")).unwrap_or_default();
    let link = format!("url={}{}{}&sig={sig}", percent_encoded(&url), opt("campaign_id", campaign_id), opt("cost_micros", cost_micros));
    match verify(SECRET, "acme", &ad_id.to_string(), Some(&link)) {
        Ok(r) => {
            assert!(valid_url(&url) && cost_micros.is_none_or(|c| c <= MAX_COST_MICROS));
            assert_eq!((r.ad_id, r.campaign_id, r.cost_micros, r.url.as_str(), r.click_id), (ad_id, campaign_id, cost_micros, url.as_str(), None));
        }
        Err(e) => assert!(!valid_url(&url) || cost_micros.is_some_and(|c| c > MAX_COST_MICROS), "a signed link was refused: {e}"),
    }
    assert!(verify(SECRET, "acme", &ad_id.wrapping_add(1).to_string(), Some(&link)).is_err(), "another ad took the link");
    assert!(verify(SECRET, "acme", &ad_id.to_string(), Some(&link.replacen("url=", "url=http%3A%2F%2Fx", 1))).is_err(), "another url took the link");
    assert!(verify(SECRET, "other", &ad_id.to_string(), Some(&link)).is_err(), "another tenant took the link");
}
