// A request body through the body splitter and the event parser
// (`tally_edge::ingest::{body, event}`), and through the one-pass reader
// (`ingest::scan`), which must answer exactly like them: the first byte
// picks the framing.

use serde_json::Value;
use tally_edge::ingest::body::{split, Format};
use tally_edge::ingest::event::{click_key, parse_click, MAX_TS_MS, MIN_TS_MS};
use tally_edge::ingest::scan::read_clicks;
use tally_filter::batch::Columns;
use tally_model::money::MAX_COST_MICROS;
use tally_model::tenant::TenantId;

/// When the fuzzed body arrived: the event time of events without `ts`.
const ARRIVAL_MS: u64 = 1_800_000_000_000;

pub fn check(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else { return };
    let format = if first & 1 == 0 { Format::Json } else { Format::NdJson };
    let tenant = TenantId::parse("fuzz").unwrap();
    let mut scanned = Vec::new();
    let scan = read_clicks(body, format, &tenant, ARRIVAL_MS, None, &mut scanned).map(|()| scanned);
    let reference =
        split(body, format).map(|events| events.into_iter().map(|r| r.and_then(|raw| parse_click(&tenant, raw, ARRIVAL_MS, None))).collect::<Vec<_>>());
    assert_eq!(scan, reference, "the one-pass reader answers like the reference");
    let Ok(events) = split(body, format) else { return };
    let text = std::str::from_utf8(body).expect("split accepts UTF-8 only");
    if format == Format::NdJson {
        assert_eq!(events.len(), text.lines().filter(|l| !l.trim().is_empty()).count(), "one event per non-blank line");
    }
    for raw in events.into_iter().flatten() {
        // Events are slices of the body.
        let range = text.as_bytes().as_ptr_range();
        assert!(range.contains(&raw.get().as_ptr()) && raw.get().len() <= text.len());
        let mut columns = Columns::default();
        let parsed = parse_click(&tenant, raw, ARRIVAL_MS, Some(&mut columns));
        assert_eq!(parsed, parse_click(&tenant, raw, ARRIVAL_MS, None), "the filter's columns change nothing");
        let Ok(click) = parsed else { continue };
        // A valid click is within bounds and is what its JSON says.
        assert!((MIN_TS_MS..=MAX_TS_MS).contains(&click.ts_ms) && click.cost_micros <= MAX_COST_MICROS);
        assert_eq!((click.verdict, click.tags.len(), click.compared.is_none()), (0, 0, true));
        // Split events are JSON by syntax only: a Value cannot hold every
        // number (1e999), which an unknown field may carry.
        let Ok(json) = serde_json::from_str::<Value>(raw.get()) else { continue };
        assert_eq!(click.key, click_key(&tenant, json["click_id"].as_str().expect("click_id is a string")));
        assert_eq!(Some(click.ad_id), json["ad_id"].as_u64());
        assert_eq!(click.campaign_id, json["campaign_id"].as_u64().unwrap_or(0));
        assert_eq!(click.cost_micros, json["cost_micros"].as_u64().unwrap_or(0));
        if let Some(ts) = json["ts"].as_u64() {
            assert_eq!(click.ts_ms, ts);
        }
        if json["ts"].is_null() {
            assert_eq!(click.ts_ms, ARRIVAL_MS, "no ts is the arrival time");
        }
        assert_eq!(click.user_hash.is_some(), json["user_id"].is_string());
    }
}
