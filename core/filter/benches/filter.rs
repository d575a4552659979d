//! Cost of tenant filters per click, one core.
//!
//! `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir plugins/target`
//! `deploy/dev/plugins-c.sh` (the C bot filter)
//! `cargo bench -p tally-filter --bench filter`
//!
//! Batches of 1000 clicks (realistic User-Agents and IPs). Rows:
//! * each example plugin's native Rust reference;
//! * building the columnar batch (paid whenever a tenant has a filter);
//! * each plugin: the call only (lifting the columns into the guest,
//!   running it, lowering and checking the answer);
//! * the no-op and bot plugins called once per click (1-click batches): the
//!   record-per-event ABI's cost, the baseline the columnar batch beats;
//! * the no-op call at several batch sizes.
//! Best of 200 runs of 5 batches: short runs, so that on a machine shared
//! with builds some of them go unpreempted (the best of 5 x 200 swung 2x).
//!
//! `TALLY_BENCH_PLUGINS=<dir>` loads the components from `dir` (flat: the
//! `.wasm` files by name) instead of `plugins/target`, so one run can time
//! an older build of the plugins beside the new one.
//! `TALLY_BENCH_ONLY=<text>` times only the plugin rows whose label holds
//! `text` (and the native ones): a focused run to profile.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tally_filter::batch::{ClickView, Columns};
use tally_filter::host::{FilterEngine, Limits, Plugin, DEFAULT_INSTANCES};

#[allow(dead_code, unused_imports)]
#[path = "../../../plugins/flood-filter/src/rules.rs"]
mod flood;
#[allow(dead_code, unused_imports)]
#[path = "../../../plugins/geo-enrich/src/rules.rs"]
mod geo;
#[allow(dead_code, unused_imports)]
#[path = "../../../plugins/bot-filter/src/rules.rs"]
mod rules;

const BATCH: usize = 1000;
const BATCHES: usize = 5;
const RUNS: usize = 200;
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
];
const IPS: [&str; 4] = ["81.2.69.160", "192.0.2.44", "2001:db8::1", "203.0.113.200"];

fn fields(i: usize) -> (&'static str, &'static str) {
    (AGENTS[i % AGENTS.len()], IPS[(i / 3) % IPS.len()])
}

fn columns() -> Columns {
    columns_of(0..BATCH)
}

fn columns_of(clicks: std::ops::Range<usize>) -> Columns {
    let mut c = Columns::with_capacity(clicks.len());
    for i in clicks {
        let (ua, ip) = fields(i);
        let view = ClickView {
            ad_id: (i % 50) as u64,
            campaign_id: 7,
            ts_ms: 1_700_000_000_000 + i as u64,
            cost_micros: 1500,
            click_id: "click-0123456789abcdef",
            user_id: "user-42",
            ip,
            user_agent: ua,
            ..Default::default()
        };
        c.push(&view, []);
    }
    c
}

fn best_ns_per_click(mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        for _ in 0..BATCHES {
            f();
        }
        best = best.min(start.elapsed());
    }
    best.as_nanos() as f64 / (BATCHES * BATCH) as f64
}

fn plugin(engine: &FilterEngine, file: &str) -> Plugin {
    let path = match std::env::var_os("TALLY_BENCH_PLUGINS") {
        Some(dir) => PathBuf::from(dir).join(Path::new(file).file_name().expect("a file name")),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target").join(file),
    };
    Plugin::load(engine, &path, Limits::new(64 << 20, Duration::from_secs(1))).unwrap_or_else(|e| panic!("{e}: build the plugins first"))
}

fn rust(name: &str) -> String {
    format!("wasm32-wasip2/release/tally_plugin_{name}.wasm")
}

fn main() {
    // Built once, as the plugin's instance builds its rules once.
    let bot_rules = rules::Rules::new();
    let native = best_ns_per_click(|| {
        let v: Vec<u16> = (0..BATCH)
            .map(|i| {
                let (ua, ip) = fields(i);
                bot_rules.verdict(ua, ip)
            })
            .collect();
        std::hint::black_box(v);
    });
    let build = best_ns_per_click(|| {
        std::hint::black_box(columns().into_batch());
    });
    let native_flood = best_ns_per_click(|| {
        let mut f = flood::Flood::new();
        let v: Vec<u16> = (0..BATCH).map(|i| f.verdict(fields(i).1, "user-42", (i % 50) as u64, 1_700_000_000_000 + i as u64)).collect();
        std::hint::black_box(v);
    });
    let native_geo = best_ns_per_click(|| {
        let v: Vec<_> = (0..BATCH).map(|i| (geo::country(fields(i).1, ""), geo::device(fields(i).0))).collect();
        std::hint::black_box(v);
    });
    let engine = FilterEngine::new(DEFAULT_INSTANCES).unwrap();
    let batch = columns().into_batch();
    println!("{BATCH}-click batches, best of {RUNS} x {BATCHES}");
    println!("{:<44} {:>10}", "stage", "ns/click");
    println!("{:<44} {:>10.1}", "native bot rules (reference)", native);
    println!("{:<44} {:>10.1}", "native flood rules (reference)", native_flood);
    println!("{:<44} {:>10.1}", "native geo + device rules (reference)", native_geo);
    println!("{:<44} {:>10.1}", "build the columnar batch (no plugin call)", build);
    let only = std::env::var("TALLY_BENCH_ONLY").ok();
    let mut bot_ns = 0.0;
    for (label, file) in [
        ("no-op plugin call", rust("noop")),
        ("bot-filter plugin call (Rust)", rust("bot_filter")),
        ("bot-filter plugin call (C)", "c/tally_plugin_bot_filter_c.wasm".to_string()),
        ("flood-filter plugin call", rust("flood_filter")),
        ("geo-enrich plugin call", rust("geo_enrich")),
    ] {
        if only.as_ref().is_some_and(|only| !label.contains(only.as_str())) {
            continue;
        }
        let mut p = plugin(&engine, &file);
        let ns = best_ns_per_click(|| {
            std::hint::black_box(p.run(&batch).unwrap());
        });
        if file == rust("bot_filter") {
            bot_ns = ns;
        }
        println!("{label:<44} {ns:>10.1}");
    }
    if only.is_some() {
        return;
    }
    // Same plugins, one click per call: what a record-per-event ABI pays.
    let singles: Vec<_> = (0..BATCH).map(|i| columns_of(i..i + 1).into_batch()).collect();
    for (label, file) in [("no-op plugin, one click per call", rust("noop")), ("bot-filter plugin (Rust), one click per call", rust("bot_filter"))] {
        let mut p = plugin(&engine, &file);
        let ns = best_ns_per_click(|| {
            for one in &singles {
                std::hint::black_box(p.run(one).unwrap());
            }
        });
        println!("{label:<44} {ns:>10.1}");
    }
    // The no-op's cost per click by batch size: the call's fixed cost spread
    // over its clicks, then flat (lifting costs per column, not per record).
    let mut noop = plugin(&engine, &rust("noop"));
    for size in [10, 100, 1000, 4096] {
        let batches: Vec<_> = (0..BATCH / size.min(BATCH)).map(|b| columns_of(b * size..(b + 1) * size).into_batch()).collect();
        let ns = best_ns_per_click(|| {
            for batch in &batches {
                std::hint::black_box(noop.run(batch).unwrap());
            }
        }) * BATCH as f64
            / (batches.len() * size) as f64;
        println!("{:<44} {ns:>10.1}", format!("no-op plugin call, {size}-click batches"));
    }
    println!("bot filter (Rust) / native: {:.2}x", bot_ns / native);
}
