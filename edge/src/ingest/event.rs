//! One click as the public API spells it, and its validation.
//!
//! Validation is per event: a bad event is rejected alone with a reason, its
//! neighbours in the same request are unaffected.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use tally_model::money::check_cost;
use tally_model::tenant::TenantId;
use tally_model::timestamp::parse_millis;

use tally_filter::batch::{ClickView, Columns};

use crate::filter::rollout::Compared;

pub const MAX_CLICK_ID_LEN: usize = 64;
pub const MAX_USER_ID_LEN: usize = 256;
pub const MAX_USER_AGENT_LEN: usize = 2048;
pub const MAX_PLACE_LEN: usize = 16;
pub const MAX_ATTRS: usize = 16;
pub const MAX_ATTR_KEY_LEN: usize = 64;
pub const MAX_ATTR_VALUE_LEN: usize = 256;
/// 2000-01-01T00:00:00Z: anything earlier is a client bug, not a click.
pub const MIN_TS_MS: u64 = 946_684_800_000;
/// The per-second tables store seconds as u32.
pub const MAX_TS_MS: u64 = u32::MAX as u64 * 1000 + 999;

/// An event's fields as sent, before validation: what serde reads here
/// (the reference) and what `ingest::scan` reads in its one pass.
#[derive(Deserialize)]
pub(super) struct WireClick<'a> {
    #[serde(borrow)]
    pub click_id: Cow<'a, str>,
    pub ad_id: u64,
    /// Absent or `null`: the edge's arrival time.
    #[serde(borrow, default)]
    pub ts: Option<WireTs<'a>>,
    pub campaign_id: Option<u64>,
    pub cost_micros: Option<u64>,
    #[serde(borrow)]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub region: Option<Cow<'a, str>>,
    /// Custom attributes, for the tenant's filter only.
    #[serde(borrow)]
    pub attrs: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

/// `ts` as sent: a number or a string. Deserialized by hand: serde's
/// untagged enums buffer the value first, which cost a third of parsing.
pub(super) enum WireTs<'a> {
    Millis(u64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for WireTs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ts<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Ts<'a> {
            type Value = WireTs<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("ms since the epoch or an RFC 3339 string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(WireTs::Millis(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Err(E::custom(format!("ts {v} is before 1970")))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(WireTs::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireTs::Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(Ts(PhantomData))
    }
}

/// A validated click, reduced to what aggregation and dedup need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    /// Dedup identity: 128-bit hash of (tenant, click_id).
    pub key: u128,
    pub ad_id: u64,
    pub campaign_id: u64,
    pub ts_ms: u64,
    pub cost_micros: u64,
    pub user_hash: Option<u64>,
    /// The tenant filter's verdict: 0 keeps the click, else a reason code.
    pub verdict: u16,
    /// The filter's enrichment: (declared dimension, value).
    pub tags: Vec<(String, String)>,
    /// With a plugin version in rollout: what both versions answered.
    pub compared: Option<Compared>,
}

impl Click {
    pub fn second(&self) -> u32 {
        (self.ts_ms / 1000) as u32
    }
}

/// Parses and validates one JSON event for `tenant` that arrived at
/// `arrival_ms` (its event time when it has no `ts`); a valid click's fields
/// are also appended to `columns` when the tenant has a filter.
///
/// The reference reading of an event; `ingest::scan` reads whole bodies in
/// one pass to the same result.
pub fn parse_click(tenant: &TenantId, raw: &RawValue, arrival_ms: u64, columns: Option<&mut Columns>) -> Result<Click, String> {
    let wire: WireClick<'_> = serde_json::from_str(raw.get()).map_err(|e| strip_position(e.to_string()))?;
    validate(&mut ClickKeys::new(tenant), &wire, arrival_ms, columns)
}

/// Validates an event's fields into a click (the key hashed with `keys`,
/// the tenant's; no `ts` is `arrival_ms`), appending them to `columns` when
/// the tenant has a filter.
pub(super) fn validate(keys: &mut ClickKeys, wire: &WireClick<'_>, arrival_ms: u64, columns: Option<&mut Columns>) -> Result<Click, String> {
    // Characters are counted only past as many bytes: never fewer bytes than characters.
    if wire.click_id.is_empty() || (wire.click_id.len() > MAX_CLICK_ID_LEN && wire.click_id.chars().count() > MAX_CLICK_ID_LEN) {
        return Err(format!("click_id must be 1-{MAX_CLICK_ID_LEN} characters"));
    }
    let ts_ms = match &wire.ts {
        None => arrival_ms,
        Some(WireTs::Millis(ms)) => *ms,
        Some(WireTs::Text(text)) => parse_millis(text)?,
    };
    if !(MIN_TS_MS..=MAX_TS_MS).contains(&ts_ms) {
        return Err(format!("ts {ts_ms} is outside 2000-01-01..2106-02-07"));
    }
    let cost_micros = check_cost(wire.cost_micros.unwrap_or(0))?;
    let user_hash = match &wire.user_id {
        Some(u) if u.is_empty() || u.len() > MAX_USER_ID_LEN => {
            return Err(format!("user_id must be 1-{MAX_USER_ID_LEN} bytes"));
        }
        Some(u) => Some(xxh3_64(u.as_bytes())),
        None => None,
    };
    if let Some(ip) = &wire.ip {
        ip.parse::<IpAddr>().map_err(|_| format!("ip {ip:?} is not an IPv4 or IPv6 address"))?;
    }
    if wire.user_agent.as_ref().is_some_and(|ua| ua.len() > MAX_USER_AGENT_LEN) {
        return Err(format!("user_agent is longer than {MAX_USER_AGENT_LEN} bytes"));
    }
    for (name, place) in [("country", &wire.country), ("region", &wire.region)] {
        if place.as_ref().is_some_and(|p| p.is_empty() || p.len() > MAX_PLACE_LEN) {
            return Err(format!("{name} must be 1-{MAX_PLACE_LEN} bytes"));
        }
    }
    if let Some(attrs) = &wire.attrs {
        if attrs.len() > MAX_ATTRS {
            return Err(format!("{} attrs; at most {MAX_ATTRS}", attrs.len()));
        }
        if attrs.iter().any(|(k, v)| k.is_empty() || k.len() > MAX_ATTR_KEY_LEN || v.len() > MAX_ATTR_VALUE_LEN) {
            return Err(format!("attrs keys must be 1-{MAX_ATTR_KEY_LEN} bytes and values at most {MAX_ATTR_VALUE_LEN}"));
        }
    }
    let click = Click {
        key: keys.key(&wire.click_id),
        ad_id: wire.ad_id,
        campaign_id: wire.campaign_id.unwrap_or(0),
        ts_ms,
        cost_micros,
        user_hash,
        verdict: 0,
        tags: Vec::new(),
        compared: None,
    };
    if let Some(columns) = columns {
        let view = ClickView {
            ad_id: click.ad_id,
            campaign_id: click.campaign_id,
            ts_ms: click.ts_ms,
            cost_micros: click.cost_micros,
            click_id: &wire.click_id,
            user_id: wire.user_id.as_deref().unwrap_or(""),
            ip: wire.ip.as_deref().unwrap_or(""),
            user_agent: wire.user_agent.as_deref().unwrap_or(""),
            country: wire.country.as_deref().unwrap_or(""),
            region: wire.region.as_deref().unwrap_or(""),
        };
        columns.push(&view, wire.attrs.iter().flatten().map(|(k, v)| (k.as_ref(), v.as_ref())));
    }
    Ok(click)
}

/// Identity of a click for dedup: tenants never collide with each other.
pub fn click_key(tenant: &TenantId, click_id: &str) -> u128 {
    ClickKeys::new(tenant).key(click_id)
}

/// [`click_key`] for many clicks of one tenant: the hashed bytes
/// (`tenant 0x00 click_id`) are built in one buffer kept for the request.
pub struct ClickKeys {
    buf: Vec<u8>,
    prefix: usize,
}

impl ClickKeys {
    pub fn new(tenant: &TenantId) -> ClickKeys {
        let mut buf = Vec::with_capacity(tenant.as_str().len() + 1 + 4 * MAX_CLICK_ID_LEN);
        buf.extend_from_slice(tenant.as_str().as_bytes());
        buf.push(0);
        ClickKeys { prefix: buf.len(), buf }
    }

    pub fn key(&mut self, click_id: &str) -> u128 {
        self.buf.truncate(self.prefix);
        self.buf.extend_from_slice(click_id.as_bytes());
        xxh3_128(&self.buf)
    }
}

/// serde_json appends "at line 1 column 17" relative to the single event,
/// which misleads more than it helps in a per-event rejection.
fn strip_position(mut msg: String) -> String {
    if let Some(at) = msg.rfind(" at line ") {
        msg.truncate(at);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Click, String> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        parse_click(&TenantId::parse("t").unwrap(), &raw, ARRIVAL_MS, None)
    }

    const ARRIVAL_MS: u64 = 1_800_000_000_000;

    #[test]
    fn no_ts_is_the_arrival_time() {
        for json in [r#"{"click_id":"c1","ad_id":7}"#, r#"{"click_id":"c1","ad_id":7,"ts":null}"#] {
            assert_eq!(parse(json).unwrap().ts_ms, ARRIVAL_MS, "{json}");
        }
        assert_eq!(parse(r#"{"click_id":"c1","ad_id":7,"ts":1700000000123}"#).unwrap().ts_ms, 1_700_000_000_123);
    }

    #[test]
    fn accepts_full_and_minimal_events() {
        let c =
            parse(r#"{"click_id":"c1","ad_id":7,"ts":1700000000123,"campaign_id":3,"cost_micros":250,"user_id":"u","ip":"::1","user_agent":"x","extra":1}"#)
                .unwrap();
        assert_eq!((c.ad_id, c.campaign_id, c.ts_ms, c.cost_micros, c.second()), (7, 3, 1_700_000_000_123, 250, 1_700_000_000));
        assert!(c.user_hash.is_some());
        let m = parse(r#"{"click_id":"c1","ad_id":7,"ts":"2023-11-14T22:13:20Z"}"#).unwrap();
        assert_eq!((m.campaign_id, m.cost_micros, m.user_hash, m.key), (0, 0, None, c.key));
    }

    #[test]
    fn rejects_with_reasons() {
        let cases = [
            (r#"{"ad_id":7,"ts":1700000000123}"#, "missing field `click_id`"),
            (r#"{"click_id":"","ad_id":7,"ts":1700000000123}"#, "click_id must be"),
            (r#"{"click_id":"c","ad_id":-1,"ts":1700000000123}"#, "invalid value"),
            (r#"{"click_id":"c","ad_id":1,"ts":"tomorrow"}"#, "neither ms"),
            (r#"{"click_id":"c","ad_id":1,"ts":1700000000123,"cost_micros":1000000001}"#, "above the per-click maximum"),
            (r#"{"click_id":"c","ad_id":1,"ts":1700000000123,"cost_micros":18446744073709551615}"#, "above the per-click maximum"),
            (r#"{"click_id":"c","ad_id":1,"ts":5}"#, "outside"),
            (r#"{"click_id":"c","ad_id":1,"ts":1700000000123,"ip":"1.2.3"}"#, "not an IPv4"),
            (r#"{"click_id":"c","ad_id":1,"ts":1700000000123,"user_id":""}"#, "user_id must be"),
            ("[1]", "invalid type"),
            (r#"{"click_id":"c","ad_id":1,"ts":1700000000123,"country":""}"#, "country must be"),
            (r#"{"click_id":"c","ad_id":1,"ts":1700000000123,"attrs":{"":"x"}}"#, "attrs keys"),
            (r#"{"click_id":"c","ad_id":1,"ts":1700000000123,"attrs":{"k":1}}"#, "invalid type"),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
        let long = format!(r#"{{"click_id":"{}","ad_id":1,"ts":1700000000123}}"#, "é".repeat(65));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn keys_separate_tenants() {
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        assert_ne!(click_key(&a, "x"), click_key(&b, "x"));
        assert_ne!(click_key(&a, "bx"), click_key(&TenantId::parse("ab").unwrap(), "x"));
    }
}
