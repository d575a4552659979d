use proptest::prelude::*;

use super::*;
use crate::ingest::body::split;

type Read = Result<Vec<Result<Click, String>>, String>;

/// When the events arrived: the event time of those without `ts`.
const ARRIVAL_MS: u64 = 1_800_000_000_000;

/// The reference: split, then parse each event on its own.
fn reference(body: &[u8], format: Format, tenant: &TenantId, mut columns: Option<&mut Columns>) -> Read {
    let raw = split(body, format)?;
    Ok(raw.into_iter().map(|r| r.and_then(|raw| parse_click(tenant, raw, ARRIVAL_MS, columns.as_deref_mut()))).collect())
}

fn scanned(body: &[u8], format: Format, tenant: &TenantId, columns: Option<&mut Columns>) -> Read {
    // A used buffer, as a request reusing one would hand it over.
    let mut out = vec![Err("stale".to_string())];
    read_clicks(body, format, tenant, ARRIVAL_MS, columns, &mut out).map(|()| out)
}

/// Same clicks, same rejections and reasons, same body errors, same columns.
fn assert_same(body: &[u8], format: Format) {
    let tenant = TenantId::parse("t").unwrap();
    let (mut want_columns, mut got_columns) = (Columns::default(), Columns::default());
    let want = reference(body, format, &tenant, Some(&mut want_columns));
    let got = scanned(body, format, &tenant, Some(&mut got_columns));
    let text = String::from_utf8_lossy(body);
    assert_eq!(got, want, "{format:?} {text}");
    assert_eq!(got_columns.into_batch(), want_columns.into_batch(), "{format:?} {text}");
    assert_eq!(scanned(body, format, &tenant, None), want, "{format:?} {text}");
}

const OK: &str = r#"{"click_id":"c1","ad_id":7,"ts":1700000000123,"campaign_id":3,"cost_micros":250,"user_id":"u","ip":"::1","user_agent":"x","country":"DE","region":"BE","attrs":{"k":"v"},"extra":[1,{"a":null}]}"#;

#[test]
fn reads_like_the_reference() {
    let cases = [
        format!("[{OK},{OK}]"),
        format!(" \n[ {OK} , {OK} ]\r\n"),
        OK.to_string(),
        "[]".into(),
        "[ ]".into(),
        "".into(),
        "  ".into(),
        "42".into(),
        "[1]".into(),
        "[{}]".into(),
        format!("[{OK}"),
        format!("[{OK},]"),
        format!("[{OK}] x"),
        format!("[{OK}]]"),
        r#"[{"click_id":"a","ad_id":1,"ts":"2023-11-14T22:13:20Z"}]"#.into(),
        r#"[{"click_id":"a","ad_id":1}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":null}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":null,"ts":null}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":nul}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":"tomorrow"}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":-5}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1.5e12}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":5}]"#.into(),
        r#"[{"click_id":"a","ad_id":-1,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a","ad_id":01,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a","ad_id":18446744073709551616,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a","ad_id":18446744073709551615,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a","ad_id":"x","ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a\n","ad_id":1,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a\u0041","ad_id":1,"ts":1700000000123}]"#.into(),
        r#"[{"click\u005fid":"a","ad_id":1,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a","click_id":"b","ad_id":1,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"campaign_id":null,"campaign_id":null}]"#.into(),
        r#"[{"click_id":"","ad_id":1,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":null,"ad_id":1,"ts":1700000000123}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"cost_micros":1000000001}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"ip":"1.2.3"}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"user_id":null,"ip":null,"country":null}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"attrs":{"k":1}}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"attrs":{"k":"1","k":"2"}}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"x":1e999,"y":-0.5E+3,"z":[true,false,null,"s"]}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"x":01}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"x":1.}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"x":tru}]"#.into(),
        r#"[{"click_id":"a","ad_id":1,"ts":1700000000123,"x":nul}]"#.into(),
        r#"[{"click_id":"a","ad_id":1 ,"ts" : 1700000000123 }]"#.into(),
        format!(r#"[{{"click_id":"a","ad_id":1,"ts":1700000000123,"x":{}1{}}}]"#, "[".repeat(40), "]".repeat(40)),
        format!(r#"[{{"click_id":"a","ad_id":1,"ts":1700000000123,"x":{}1{}}}]"#, "[".repeat(200), "]".repeat(200)),
        format!(r#"[{{"click_id":"{}","ad_id":1,"ts":1700000000123}}]"#, "é".repeat(64)),
        format!(r#"[{{"click_id":"{}","ad_id":1,"ts":1700000000123}}]"#, "é".repeat(65)),
        "\u{a0}[]".into(),
    ];
    for body in &cases {
        assert_same(body.as_bytes(), Format::Json);
        assert_same(body.as_bytes(), Format::NdJson);
    }
    assert_same(&[0xff, b'['], Format::Json);
    let nd = format!("{OK}\n\n  \nnot json\n{OK} x\n[1]\n{OK}\r\n {OK}\n");
    assert_same(nd.as_bytes(), Format::NdJson);
}

proptest! {
    #[test]
    fn plain_len_stops_where_a_byte_loop_does(bytes in prop::collection::vec(prop::sample::select(vec![b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x00, b'0']), 0..40)) {
        let want = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(bytes.len());
        prop_assert_eq!(plain_len(&bytes), want);
    }
}

/// The usual events, bad values included, never need the reference.
#[test]
fn the_fast_path_takes_usual_bodies() {
    let body = format!(
        r#"[{OK}, {{"click_id":"b","ad_id":1,"ts":"2023-11-14T22:13:20Z","ip":"1.2.3"}}, {{"click_id":"","ad_id":1,"ts":5,"user_id":null}}, {{"click_id":"d","ad_id":1}}, {{"click_id":"e","ad_id":1,"ts":null}}]"#
    );
    let mut keys = ClickKeys::new(&TenantId::parse("t").unwrap());
    let mut out = Vec::new();
    assert!(read_json(&body, &mut keys, ARRIVAL_MS, None, &mut out).is_some());
    assert_eq!(out.iter().map(Result::is_ok).collect::<Vec<_>>(), [true, false, false, true, true]);
    assert_eq!(out[3].as_ref().map(|c| c.ts_ms), Ok(ARRIVAL_MS));
    assert_eq!(out[4].as_ref().map(|c| c.ts_ms), Ok(ARRIVAL_MS));
}

/// Pieces events are made of: valid and invalid values of every field, the
/// spellings the fast path takes and those it leaves to the reference.
fn field() -> impl Strategy<Value = String> {
    let value = prop::sample::select(vec![
        "\"c-1\"",
        "\"c-2\"",
        "\"\"",
        "\"a\\\"b\"",
        "\"\\u00e9\"",
        "\"é\"",
        "\"1.2.3.4\"",
        "\"::1\"",
        "\"2023-11-14T22:13:20Z\"",
        "\"1700000000123\"",
        "\"DE\"",
        "\"DEUTSCHLAND-BAYERN\"",
        "0",
        "7",
        "01",
        "-1",
        "1.5",
        "1e3",
        "1700000000123",
        "1000000000",
        "1000000001",
        "18446744073709551615",
        "18446744073709551616",
        "null",
        "true",
        "[]",
        "{}",
        "{\"k\":\"v\"}",
        "{\"k\":\"v\",\"k\":\"w\"}",
        "{\"k\":1}",
        "[1,[2,{\"x\":null}]]",
        "nul",
        "\"unterminated",
    ]);
    let name = prop::sample::select(vec![
        "click_id",
        "ad_id",
        "ts",
        "campaign_id",
        "cost_micros",
        "user_id",
        "ip",
        "user_agent",
        "country",
        "region",
        "attrs",
        "extra",
        "click\\u005fid",
    ]);
    (name, value, prop::sample::select(vec!["", " ", "\n"])).prop_map(|(n, v, ws)| format!("\"{n}\"{ws}:{ws}{v}"))
}

fn event() -> impl Strategy<Value = String> {
    // With and without `ts` (then the arrival time).
    let valid = prop::sample::select(vec![r#""click_id":"ok","ad_id":1,"ts":1700000000123"#.to_string(), r#""click_id":"ok","ad_id":1"#.to_string()]);
    (prop::bool::weighted(0.7), prop::collection::vec(field(), 0..5), valid).prop_map(|(base, extra, valid)| {
        let mut fields = extra;
        if base {
            fields.insert(0, valid);
        }
        format!("{{{}}}", fields.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_body_reads_like_the_reference(events in prop::collection::vec(event(), 0..6), sep in prop::sample::select(vec![",", " , ", ",\n", " "]), tail in prop::sample::select(vec!["", " ", "x", "]", ","])) {
        let body = format!("[{}]{tail}", events.join(sep));
        assert_same(body.as_bytes(), Format::Json);
        assert_same(events.join("\n").as_bytes(), Format::NdJson);
        if let Some(first) = events.first() {
            assert_same(first.as_bytes(), Format::Json);
        }
    }
}
