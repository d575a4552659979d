//! Cost of tenant filters per click, one core.
//!
//! `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml`
//! `cargo bench -p tally-edge --bench filter`
//!
//! Batches of 1000 clicks (realistic User-Agents and IPs). Rows:
//! * native bot rules in Rust (the reference the plugin must match);
//! * building the columnar batch (paid whenever a tenant has a filter);
//! * a no-op plugin and the bot-filter plugin: the call only (lifting the
//!   columns into the guest, running it, lowering the verdicts).
//! Best of 5 runs of 200 batches.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tally_edge::filter::batch::Columns;
use tally_edge::filter::host::{FailurePolicy, FilterEngine, Limits, Plugin};

#[path = "../../plugins/bot-filter/src/rules.rs"]
mod rules;

const BATCH: usize = 1000;
const BATCHES: usize = 200;
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
    let mut c = Columns::default();
    for i in 0..BATCH {
        let (ua, ip) = fields(i);
        c.push(i as u64, 7, 1_700_000_000_000 + i as u64, 1500, "click-0123456789abcdef", "user-42", ip, ua);
    }
    c
}

fn best_ns_per_click(mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..BATCHES {
            f();
        }
        best = best.min(start.elapsed());
    }
    best.as_nanos() as f64 / (BATCHES * BATCH) as f64
}

fn plugin(engine: &FilterEngine, name: &str) -> Plugin {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/target/wasm32-wasip2/release/tally_plugin_{name}.wasm"));
    Plugin::load(engine, &path, FailurePolicy::Open, Limits { memory_bytes: 64 << 20, timeout: Duration::from_secs(1) })
        .unwrap_or_else(|e| panic!("{e}: build the plugins first"))
}

fn main() {
    let native = best_ns_per_click(|| {
        let v: Vec<u16> = (0..BATCH).map(|i| {
            let (ua, ip) = fields(i);
            rules::verdict(ua, ip)
        }).collect();
        std::hint::black_box(v);
    });
    let build = best_ns_per_click(|| {
        std::hint::black_box(columns().into_batch());
    });
    let engine = FilterEngine::new().unwrap();
    let batch = columns().into_batch();
    let mut noop = plugin(&engine, "noop");
    let noop_ns = best_ns_per_click(|| {
        std::hint::black_box(noop.run(&batch).unwrap());
    });
    let mut bot = plugin(&engine, "bot_filter");
    let bot_ns = best_ns_per_click(|| {
        std::hint::black_box(bot.run(&batch).unwrap());
    });
    println!("{BATCH}-click batches, best of 5 x {BATCHES}");
    println!("{:<44} {:>10}", "stage", "ns/click");
    println!("{:<44} {:>10.1}", "native bot rules (reference)", native);
    println!("{:<44} {:>10.1}", "build the columnar batch (no plugin call)", build);
    println!("{:<44} {:>10.1}", "no-op plugin call", noop_ns);
    println!("{:<44} {:>10.1}", "bot-filter plugin call", bot_ns);
    println!("bot filter / native: {:.2}x", bot_ns / native);
}
