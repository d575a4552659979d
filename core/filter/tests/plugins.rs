//! Real plugins, built from `plugins/` for wasm32-wasip2 (and the C one
//! from `plugins/c/`; deploy/dev/test.sh builds them first), run by the host
//! and compared with their native references on generated clicks.

use std::path::PathBuf;
use std::time::Duration;

use tally_filter::answer::{Answer, BadAnswer, Tag};
use tally_filter::batch::{ClickView, Columns};
use tally_filter::contract::ClickBatch;
use tally_filter::failure::Failure;
use tally_filter::host::{Compiled, FilterEngine, FilterError, Limits, Plugin, DEFAULT_INSTANCES, QUARANTINE_AFTER};

#[allow(dead_code, unused_imports)]
#[path = "../../../plugins/bot-filter/src/rules.rs"]
mod bot;
#[allow(dead_code, unused_imports)]
#[path = "../../../plugins/flood-filter/src/rules.rs"]
mod flood;
#[allow(dead_code, unused_imports)]
#[path = "../../../plugins/geo-enrich/src/rules.rs"]
mod geo;

fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target")
}

fn plugin(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("wasm32-wasip2/release/tally_plugin_{name}.wasm"));
    assert!(path.exists(), "{} missing: build the plugins (deploy/dev/test.sh does)", path.display());
    path
}

/// Generous, so a loaded machine never fails a good plugin's call.
fn limits() -> Limits {
    Limits::new(32 << 20, Duration::from_secs(2))
}

fn load(engine: &FilterEngine, path: &std::path::Path) -> Plugin {
    Plugin::load(engine, path, limits()).unwrap_or_else(|e| panic!("{e}"))
}

const AGENTS: [&str; 7] = ["Mozilla/5.0 (X11; Linux)", "Googlebot/2.1", "curl/8.0", "Mozilla/5.0 HeadlessChrome", "", "Safari", "Mozilla/5.0 (iPhone) Mobile"];
const IPS: [&str; 9] = ["10.1.2.3", "192.0.2.77", "203.0.113.9", "8.8.8.8", "", "::1", "10.2.9.9", "81.2.69.160", "10.3.0.1"];
const COUNTRIES: [&str; 4] = ["", "", "", "NL"];

/// One generated click: (user agent, ip, user id, ad, ts, carried country).
type Fields = (&'static str, &'static str, String, u64, u64, &'static str);

fn clicks(n: usize, seed: u64) -> (ClickBatch, Vec<Fields>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut cols = Columns::default();
    let mut fields = Vec::new();
    for i in 0..n {
        let f: Fields = (
            AGENTS[rng.usize(..AGENTS.len())],
            IPS[rng.usize(..IPS.len())],
            if rng.bool() { format!("u{}", rng.u8(..4)) } else { String::new() },
            rng.u64(1..4),
            1_700_000_000_000 + seed * 50_000 + rng.u64(..90_000),
            COUNTRIES[rng.usize(..COUNTRIES.len())],
        );
        let click_id = format!("c{seed}-{i}");
        let view = ClickView { ad_id: f.3, ts_ms: f.4, click_id: &click_id, user_id: &f.2, ip: f.1, user_agent: f.0, country: f.5, ..Default::default() };
        cols.push(&view, [("placement", "top")]);
        fields.push(f);
    }
    (cols.into_batch(), fields)
}

fn bot_reference(fields: &[Fields]) -> Answer {
    let rules = bot::Rules::new();
    Answer { codes: fields.iter().map(|f| rules.verdict(f.0, f.1)).collect(), tags: Default::default() }
}

#[test]
fn bot_filters_in_rust_and_c_agree_with_the_native_rules() {
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    let c = plugins_dir().join("c/tally_plugin_bot_filter_c.wasm");
    assert!(c.exists(), "{} missing: build the C plugin (deploy/dev/plugins-c.sh)", c.display());
    for path in [plugin("bot_filter"), c] {
        let mut p = load(&engine, &path);
        for seed in 0..5 {
            let (batch, fields) = clicks(500, seed);
            let answer = p.run(&batch).unwrap();
            assert_eq!(answer, bot_reference(&fields), "{}", path.display());
            assert!(answer.codes.contains(&bot::BOT_USER_AGENT) && answer.codes.contains(&bot::BLOCKED_NETWORK));
        }
    }
    let mut noop = load(&engine, &plugin("noop"));
    assert_eq!(noop.run(&clicks(10, 1).0).unwrap(), Answer::keep_all(10));
    assert_eq!(noop.run(&Columns::default().into_batch()).unwrap(), Answer::keep_all(0));
}

#[test]
fn flood_filter_keeps_state_across_batches_like_its_reference() {
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    let mut p = load(&engine, &plugin("flood_filter"));
    let mut reference = flood::Flood::new();
    let mut dropped = 0;
    // Consecutive batches share sources and minutes: counts carry over.
    for seed in 0..8 {
        let (batch, fields) = clicks(300, seed / 2);
        let want: Vec<u16> = fields.iter().map(|f| reference.verdict(f.1, &f.2, f.3, f.4)).collect();
        let answer = p.run(&batch).unwrap();
        assert_eq!(answer.codes, want, "batch {seed}");
        dropped += want.iter().filter(|c| **c == flood::FLOODING).count();
    }
    assert!(dropped > 100, "the generated clicks should flood: {dropped}");
}

/// The flood filter's state stays within a tenant's memory limit: past its
/// cap of counters it stops adding (as its reference does), it does not
/// grow until the limit kills it.
#[test]
fn flood_state_at_its_cap_fits_a_tenants_memory_limit() {
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    let mut p = Plugin::load(&engine, &plugin("flood_filter"), Limits::new(32 << 20, Duration::from_secs(5))).unwrap();
    let mut reference = flood::Flood::new();
    let batches = flood::MAX_KEYS / 1000 + 20;
    for b in 0..batches {
        let mut cols = Columns::default();
        // A new source per click: the cap is reached, then passed.
        let ips: Vec<String> = (0..1000).map(|i| format!("10.{b}.{}.{}", i / 256, i % 256)).collect();
        for ip in &ips {
            cols.push(&ClickView { ad_id: 1, ts_ms: 1_700_000_000_000, click_id: "c", ip, ..Default::default() }, []);
        }
        let want: Vec<u16> = ips.iter().map(|ip| reference.verdict(ip, "", 1, 1_700_000_000_000)).collect();
        assert_eq!(p.run(&cols.into_batch()).unwrap().codes, want, "batch {b}");
    }
}

#[test]
fn geo_enrichment_tags_like_its_reference() {
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    let mut p = load(&engine, &plugin("geo_enrich"));
    for seed in 0..3 {
        let (batch, fields) = clicks(400, seed);
        let answer = p.run(&batch).unwrap();
        assert_eq!(answer.codes, vec![0; 400]);
        let mut want = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if let Some(c) = geo::country(f.1, f.5) {
                want.push(Tag { click: i as u32, key: "country", value: c });
            }
            if let Some(d) = geo::device(f.0) {
                want.push(Tag { click: i as u32, key: "device", value: d });
            }
        }
        let mut got: Vec<Tag> = answer.tags.iter().collect();
        got.sort_by(|a, b| (a.click, &a.key).cmp(&(b.click, &b.key)));
        want.sort_by(|a, b| (a.click, &a.key).cmp(&(b.click, &b.key)));
        assert_eq!(got, want);
        assert!(want.iter().any(|t| t.value == "NL") && want.iter().any(|t| t.value == "DE"));
    }
}

/// A tenant's output limit binds its plugin: the geo filter tags most
/// clicks twice, more than one tag per click is refused as a failure.
#[test]
fn a_tenants_output_limit_binds_its_plugin() {
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    let (batch, _) = clicks(400, 0);
    let mut two = Plugin::load(&engine, &plugin("geo_enrich"), Limits { tags_per_click: 2, ..limits() }).unwrap();
    assert!(two.run(&batch).is_ok());
    let mut one = Plugin::load(&engine, &plugin("geo_enrich"), Limits { tags_per_click: 1, ..limits() }).unwrap();
    assert!(matches!(one.run(&batch), Err(Failure::BadAnswer(e @ BadAnswer::TooManyTags { .. })) if e.to_string().contains("at most 1 per click")));
}

/// ad id of the first click selects the hostile behaviour (see plugins/hostile).
fn hostile_batch(ad: u64) -> ClickBatch {
    let mut cols = Columns::default();
    cols.push(&ClickView { ad_id: ad, ts_ms: 1_700_000_000_000, click_id: "c", ..Default::default() }, []);
    cols.push(&ClickView { ad_id: 99, ts_ms: 1_700_000_000_000, click_id: "d", ..Default::default() }, []);
    cols.into_batch()
}

#[test]
fn hostile_plugins_are_contained_rebuilt_and_quarantined() {
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    // A shorter deadline: its loops run into it twice.
    let mut hostile = Plugin::load(&engine, &plugin("hostile"), Limits { timeout: Duration::from_millis(300), ..limits() }).unwrap();
    assert_eq!(hostile.run(&hostile_batch(9)).unwrap(), Answer::keep_all(2));
    // Each failure is contained, told apart by kind, and the next call runs
    // on a fresh instance. (A Rust guest's panic ends in a trap whose text
    // depends on the toolchain.)
    type Kind = fn(&Failure) -> bool;
    let timeout: Kind = |f| matches!(f, Failure::Timeout(_));
    let trap: Kind = |f| matches!(f, Failure::Trap(_));
    let bad_answer: Kind = |f| matches!(f, Failure::BadAnswer(_));
    let memory: Kind = |f| matches!(f, Failure::OutOfMemory(_));
    let cases = [
        (1, Some(timeout), "interrupt"),
        (3, Some(trap), "wasm"),
        (9, None, ""),
        (5, Some(bad_answer), "tags for 2 clicks"),
        (9, None, ""),
        (2, Some(memory), "memory"),
        (9, None, ""),
    ];
    for (ad, kind, what) in cases {
        match hostile.run(&hostile_batch(ad)) {
            Ok(a) => assert!(kind.is_none() && ad == 9 && a == Answer::keep_all(2), "ad {ad}: {a:?}"),
            Err(f) => assert!(kind.is_some_and(|k| k(&f)) && f.to_string().to_lowercase().contains(what), "ad {ad}: {f:?}"),
        }
    }
    let twenty = BadAnswer::Codes { codes: 20, clicks: 2 };
    assert!(matches!(hostile.run(&hostile_batch(4)), Err(Failure::BadAnswer(e)) if e == twenty && e.to_string().contains("20 verdicts for 2 clicks")));
    // Three failures in a row: quarantined, no more calls.
    assert!(matches!(hostile.run(&hostile_batch(3)), Err(Failure::Trap(_))));
    assert!(matches!(hostile.run(&hostile_batch(1)), Err(Failure::Timeout(_))));
    assert!(hostile.is_quarantined());
    assert_eq!(hostile.run(&hostile_batch(9)), Err(Failure::Quarantined));
    // Another tenant's plugin on the same engine is unaffected.
    let mut noop = load(&engine, &plugin("noop"));
    assert_eq!(noop.run(&hostile_batch(1)).unwrap(), Answer::keep_all(2));
}

#[test]
fn refuses_what_is_not_a_filter() {
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let limits = || Limits::new(1 << 20, Duration::from_millis(10));
    assert!(Plugin::load(&engine, &junk, limits()).is_err());
    assert!(Plugin::load(&engine, &dir.path().join("missing.wasm"), limits()).is_err());
}

/// Slots are shared by every plugin on an engine. A call that finds none
/// free fails as `NoCapacity`, which is not the plugin's fault: it never
/// quarantines it, and the plugin runs again once a slot is free.
#[test]
fn a_full_engine_is_not_held_against_a_plugin() {
    let engine = FilterEngine::new(2).unwrap();
    let _first = load(&engine, &plugin("noop"));
    let mut hostile = Plugin::load(&engine, &plugin("hostile"), Limits { timeout: Duration::from_millis(300), ..limits() }).unwrap();
    // Every slot is taken: a third plugin cannot start.
    let third = Plugin::load(&engine, &plugin("noop"), limits());
    assert!(matches!(third, Err(FilterError::NoCapacity { .. })), "a third instance on a 2-slot engine");
    // One waiting for a slot fails its calls as `NoCapacity` until one is free.
    let mut waiting = Plugin::unstarted(Compiled::from_file(&engine, &plugin("noop")).unwrap(), limits());
    assert!(matches!(waiting.run(&hostile_batch(1)), Err(Failure::NoCapacity(_))));
    // A trap frees the hostile plugin's slot (its instance is dropped) and
    // a neighbour takes it before the rebuild.
    assert!(matches!(hostile.run(&hostile_batch(3)), Err(Failure::Trap(_))));
    let neighbour = load(&engine, &plugin("noop"));
    for _ in 0..QUARANTINE_AFTER + 2 {
        assert!(matches!(hostile.run(&hostile_batch(9)), Err(Failure::NoCapacity(e)) if e.contains("no instance slot")));
    }
    assert!(!hostile.is_quarantined(), "a full engine counted against the plugin");
    drop(neighbour);
    assert_eq!(hostile.run(&hostile_batch(9)).unwrap(), Answer::keep_all(2));
    drop(_first);
    assert_eq!(waiting.run(&hostile_batch(1)).unwrap(), Answer::keep_all(2), "started once a slot freed");
    assert!(!waiting.is_quarantined());
}
