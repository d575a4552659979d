//! Edge ingest pipeline throughput, one core, no network.
//!
//! `cargo bench -p tally-edge --bench pipeline`
//!
//! Measures events/s for a 1000-event JSON array body through:
//! * `split`: body framing only (the baseline: what any JSON collector pays);
//! * `split+validate`: plus per-event parsing and validation, the
//!   reference way (`body::split`, then `event::parse_click` per event);
//! * `scan`: the same answer in one pass (`ingest::scan`), as the edge reads;
//! * `full`: `scan` plus admission (time policy, dedup) and per-second aggregation
//!   with click records under the pipeline lock (memory-ack path: no disk),
//!   with a seal every 100 bodies (about what a 1 s ship interval sees).
//! Best of 5 runs of 200 bodies each.

use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tally_edge::dedup::DedupConfig;
use tally_edge::ingest::body::{split, Format};
use tally_edge::ingest::event::parse_click;
use tally_edge::ingest::pipeline::{Pipeline, TimePolicy};
use tally_edge::ingest::scan::read_clicks;
use tally_model::tenant::TenantId;

const EVENTS: usize = 1000;
const BODIES: usize = 200;
/// When the bodies arrived (their events all carry `ts`).
const ARRIVAL_MS: u64 = 1_800_000_000_000;

fn body(n: usize, offset: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(offset as u64);
    let events: Vec<String> = (0..n)
        .map(|i| {
            let ad = if rng.bool() { 1 } else { rng.u64(1..1000) };
            format!(
                r#"{{"click_id":"c-{}","ad_id":{ad},"ts":{},"campaign_id":{},"cost_micros":{},"user_id":"u{}","ip":"10.1.2.3","user_agent":"Mozilla/5.0 (bench)"}}"#,
                offset + i,
                1_700_000_000_000u64 + rng.u64(0..5_000),
                ad / 10,
                rng.u64(100..5000),
                rng.u64(0..100_000)
            )
        })
        .collect();
    format!("[{}]", events.join(",")).into_bytes()
}

fn best_of(runs: usize, mut f: impl FnMut() -> usize) -> (f64, Duration) {
    let mut best = Duration::MAX;
    let mut events = 0;
    for _ in 0..runs {
        let start = Instant::now();
        events = f();
        best = best.min(start.elapsed());
    }
    (events as f64 / best.as_secs_f64(), best)
}

fn main() {
    let tenant = TenantId::parse("bench").unwrap();
    let bodies: Vec<Vec<u8>> = (0..BODIES).map(|b| body(EVENTS, b * EVENTS)).collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!("{BODIES} bodies x {EVENTS} events, {:.0} bytes/event", bytes as f64 / (BODIES * EVENTS) as f64);

    let (split_rate, _) = best_of(5, || bodies.iter().map(|b| split(b, Format::Json).unwrap().len()).sum());
    let (validate_rate, _) = best_of(5, || {
        bodies
            .iter()
            .map(|b| {
                let raw: Vec<Result<&RawValue, String>> = split(b, Format::Json).unwrap();
                raw.into_iter().filter(|r| r.as_ref().is_ok_and(|raw| parse_click(&tenant, raw, ARRIVAL_MS, None).is_ok())).count()
            })
            .sum()
    });
    let (scan_rate, _) = best_of(5, || {
        let mut clicks = Vec::new();
        bodies
            .iter()
            .map(|b| {
                read_clicks(b, Format::Json, &tenant, ARRIVAL_MS, None, &mut clicks).unwrap();
                clicks.iter().filter(|c| c.is_ok()).count()
            })
            .sum()
    });
    let (full_rate, _) = best_of(5, || {
        let policy = TimePolicy { allowed_lateness_ms: 3_600_000, max_future_ms: 300_000, idle_lag_ms: 300_000 };
        let mut pipeline = Pipeline::new(DedupConfig::new(3_600_000, 10_000_000), policy, 0);
        let mut n = 0;
        let now = 1_700_000_005_000;
        for (i, b) in bodies.iter().enumerate() {
            let mut clicks = Vec::new();
            read_clicks(b, Format::Json, &tenant, ARRIVAL_MS, None, &mut clicks).unwrap();
            let (outcome, admitted) = pipeline.admit(&tenant, clicks, None, now);
            if let Some(mut admitted) = admitted {
                admitted.record.lsn = pipeline.applied_to();
                pipeline.apply(&admitted);
            }
            n += outcome.accepted as usize;
            if i % 100 == 99 {
                std::hint::black_box(pipeline.seal(now, None));
            }
        }
        n
    });
    println!("{:<28} {:>12}  {:>9}", "stage", "events/s", "vs split");
    for (name, rate) in [
        ("split (baseline)", split_rate),
        ("split+validate (reference)", validate_rate),
        ("scan (one pass)", scan_rate),
        ("full (scan+dedup+aggregate)", full_rate),
    ] {
        println!("{name:<28} {rate:>12.0}  {:>8.2}x", rate / split_rate);
    }
}
