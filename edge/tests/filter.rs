//! Real plugins, built from `plugins/` for wasm32-wasip2 (deploy/dev/test.sh
//! builds them first), run by the edge's host.

use std::path::PathBuf;
use std::time::Duration;

use tally_edge::filter::batch::Columns;
use tally_edge::filter::host::{Failure, FailurePolicy, FilterEngine, Limits, Plugin};

#[path = "../../plugins/bot-filter/src/rules.rs"]
mod rules;

fn plugin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/target/wasm32-wasip2/release/tally_plugin_{name}.wasm"));
    assert!(path.exists(), "{} missing: build the plugins (cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml)", path.display());
    path
}

fn load(engine: &FilterEngine, name: &str) -> Plugin {
    Plugin::load(engine, &plugin(name), FailurePolicy::Open, Limits { memory_bytes: 32 << 20, timeout: Duration::from_millis(100) }).unwrap()
}

const AGENTS: [&str; 6] = ["Mozilla/5.0 (X11; Linux)", "Googlebot/2.1", "curl/8.0", "Mozilla/5.0 HeadlessChrome", "", "Safari"];
const IPS: [&str; 6] = ["10.1.2.3", "192.0.2.77", "203.0.113.9", "8.8.8.8", "", "::1"];

fn clicks(n: usize, seed: u64) -> (Columns, Vec<(String, String)>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut cols = Columns::default();
    let mut fields = Vec::new();
    for i in 0..n {
        let (ua, ip) = (AGENTS[rng.usize(..AGENTS.len())], IPS[rng.usize(..IPS.len())]);
        cols.push(100 + i as u64, 1, 1_700_000_000_000, 10, &format!("c{i}"), "u", ip, ua);
        fields.push((ua.to_string(), ip.to_string()));
    }
    (cols, fields)
}

#[test]
fn bot_filter_agrees_with_its_native_reference() {
    let engine = FilterEngine::new().unwrap();
    let mut bot = load(&engine, "bot_filter");
    for seed in 0..5 {
        let (cols, fields) = clicks(500, seed);
        let verdicts = bot.run(&cols.into_batch()).unwrap();
        let native: Vec<u16> = fields.iter().map(|(ua, ip)| rules::verdict(ua, ip)).collect();
        assert_eq!(verdicts, native);
        assert!(verdicts.iter().any(|v| *v == rules::BOT_USER_AGENT) && verdicts.iter().any(|v| *v == rules::BLOCKED_NETWORK));
    }
    let mut noop = load(&engine, "noop");
    assert_eq!(noop.run(&clicks(10, 1).0.into_batch()).unwrap(), vec![0; 10]);
    assert!(noop.run(&Columns::default().into_batch()).unwrap().is_empty());
}

/// ad id of the first click selects the hostile behaviour (see plugins/hostile).
fn hostile_batch(ad: u64) -> tally_edge::filter::host::ClickBatch {
    let mut cols = Columns::default();
    cols.push(ad, 0, 1_700_000_000_000, 0, "c", "", "", "");
    cols.push(99, 0, 1_700_000_000_000, 0, "d", "", "", "");
    cols.into_batch()
}

#[test]
fn hostile_plugins_are_contained_rebuilt_and_quarantined() {
    let engine = FilterEngine::new().unwrap();
    let mut hostile = load(&engine, "hostile");
    assert_eq!(hostile.run(&hostile_batch(9)).unwrap(), vec![0, 0]);
    // Each failure is contained and the next call runs on a fresh instance.
    // (A Rust guest's panic ends in a trap whose text depends on the toolchain.)
    for (ad, what) in [(1, "interrupt"), (3, "wasm"), (9, "")] {
        match hostile.run(&hostile_batch(ad)) {
            Ok(v) => assert!(what.is_empty() && v == vec![0, 0], "ad {ad}: {v:?}"),
            Err(Failure::Failed(e)) => assert!(e.to_lowercase().contains(what), "ad {ad}: {e}"),
            Err(f) => panic!("ad {ad}: {f:?}"),
        }
    }
    // Memory bomb and a verdict list of the wrong length fail too.
    assert!(matches!(hostile.run(&hostile_batch(2)), Err(Failure::Failed(_))));
    assert!(matches!(hostile.run(&hostile_batch(4)), Err(Failure::Failed(e)) if e.contains("20 verdicts for 2 clicks")));
    // Three failures in a row: quarantined, no more calls.
    assert!(matches!(hostile.run(&hostile_batch(3)), Err(Failure::Failed(_))));
    assert!(hostile.is_quarantined());
    assert_eq!(hostile.run(&hostile_batch(9)), Err(Failure::Quarantined));
    // Another tenant's plugin on the same engine is unaffected.
    let mut noop = load(&engine, "noop");
    assert_eq!(noop.run(&hostile_batch(1)).unwrap(), vec![0, 0]);
}

#[test]
fn refuses_what_is_not_a_filter() {
    let engine = FilterEngine::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let limits = || Limits { memory_bytes: 1 << 20, timeout: Duration::from_millis(10) };
    assert!(Plugin::load(&engine, &junk, FailurePolicy::Closed, limits()).is_err());
    assert!(Plugin::load(&engine, &dir.path().join("missing.wasm"), FailurePolicy::Closed, limits()).is_err());
}
