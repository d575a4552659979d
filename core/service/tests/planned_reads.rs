//! Planned reads (`tally_core::read_plan`) against a real ClickHouse 18.16:
//! over ragged ranges of several days, top ads, dimension values, refused
//! reasons and totals read from the coarsest rollups answer exactly what the
//! minute rollup alone answers (what every query read before plans), and
//! top ads over ranges that are not minute-aligned count exactly the clicks
//! of their seconds.

use std::collections::BTreeMap;

use tally_core::clickhouse::private_server::PrivateServer;
use tally_core::clickhouse::Store;
use tally_core::commit::committer::{commit_group, Entry, Outcome};
use tally_core::read_plan::Plan;
use tally_core::resolution::Resolution;
use tally_model::batch::frame::BatchArchive;
use tally_model::batch::{Batch, DimRow, RefusalReason, RefusedRecord, SecondRow, TenantRows};

/// 2026-11-02 00:00:00 UTC: the data spans three days and a bit from here.
const START: u32 = 1_793_577_600;
const SPAN: u32 = 3 * 86_400 + 7_000;
const TENANT: &str = "acme";

/// A deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn batch(rng: &mut Rng, seq: u64) -> Batch {
    let mut rows = Vec::new();
    let mut dims = Vec::new();
    let mut refused = Vec::new();
    for i in 0..300 {
        let ad_id = 1 + rng.below(12);
        let second = START + rng.below(SPAN as u64) as u32;
        let clicks = 1 + rng.below(4);
        // Some rows carry many users: more than the 16 a small sketch holds exactly.
        let users = rng.below(if i % 10 == 0 { 40 } else { 4 });
        let mut user_hashes: Vec<u64> = (0..users).map(|_| 1 + rng.below(200)).collect();
        user_hashes.sort();
        user_hashes.dedup();
        rows.push(SecondRow { ad_id, campaign_id: ad_id % 3, second, clicks, spend_micros: clicks * (10 + ad_id), user_hashes });
        let value = ["DE", "FR", "US", "IT", "ES"][rng.below(5) as usize];
        dims.push(DimRow { ad_id, campaign_id: ad_id % 3, second, dimension: "country".into(), value: value.into(), clicks, spend_micros: clicks * 10 });
        let (reason, code) = match rng.below(3) {
            0 => (RefusalReason::TooLate, 0),
            1 => (RefusalReason::Filtered, 3),
            _ => (RefusalReason::Filtered, 1 + rng.below(3) as u16),
        };
        refused.push(RefusedRecord { id_hi: seq, id_lo: i, ad_id, ts_ms: second as u64 * 1000 + rng.below(1000), reason, code, at_ms: second as u64 * 1000 });
    }
    let tenant = TenantRows { tenant: TENANT.into(), rows, clicks: vec![], refused, dims, verdicts: vec![] };
    Batch { edge: "edge-p".into(), seq, sealed_at_ms: 0, low_watermark_ms: 0, wal_from: seq * 10, wal_to: seq * 10 + 1, tenants: vec![tenant] }
}

/// Clicks and spend per ad of `batches` in `[from, to)` (seconds), most clicked first.
fn top_ads(batches: &[Batch], from: u32, to: u32) -> Vec<(u64, u64, u64)> {
    let mut per_ad: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for r in batches.iter().flat_map(|b| &b.tenants[0].rows).filter(|r| (from..to).contains(&r.second)) {
        let e = per_ad.entry(r.ad_id).or_default();
        e.0 += r.clicks;
        e.1 += r.spend_micros;
    }
    let mut ads: Vec<(u64, u64, u64)> = per_ad.into_iter().map(|(ad, (c, s))| (ad, c, s)).collect();
    ads.sort_by_key(|&(ad, c, _)| (std::cmp::Reverse(c), ad));
    ads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_reads_answer_what_the_minute_rollup_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivateServer::start(dir.path()).await.unwrap();
    let store = Store::connect(&server.http_url(), None, None).await.unwrap();
    store.migrate().await.unwrap();
    let mut rng = Rng(0x005E_ED0F_7A11);
    // Several INSERTs, so every rollup holds several partial states per key.
    let batches: Vec<Batch> = (1..=4).map(|seq| batch(&mut rng, seq)).collect();
    for (i, b) in batches.iter().enumerate() {
        let outcome = commit_group(&store, &[Entry::new(BatchArchive::of(b), 0xC0 + i as u64)], &mut || {}).await.unwrap();
        assert_eq!(outcome, [Outcome::Committed]);
    }

    let mut ranges = vec![(START, START + SPAN + 1), (START + 86_400, START + 2 * 86_400)];
    for _ in 0..40 {
        let (a, b) = (START - 3_600 + rng.below(SPAN as u64 + 7_200) as u32, START - 3_600 + rng.below(SPAN as u64 + 7_200) as u32);
        ranges.push((a.min(b), a.max(b) + 1));
    }
    let minute = Resolution::Minute;
    let mut compared = 0;
    for &(from, to) in &ranges {
        // Top ads are exact to the second whatever the range.
        let planned = store.top_ads(TENANT, &Plan::new(from, to, Resolution::Second).unwrap(), 1000).await.unwrap();
        let got: Vec<(u64, u64, u64)> = planned.iter().map(|a| (a.ad_id, a.clicks, a.spend_micros)).collect();
        assert_eq!(got, top_ads(&batches, from, to), "top ads of [{from}, {to})");

        // Minute-aligned (what ranked queries and series of a minute or more
        // read): the planned answer is the minute rollup's answer.
        let (from, to) = (from.div_ceil(60) * 60, to / 60 * 60);
        if from >= to {
            continue;
        }
        let (plan, single) = (Plan::new(from, to, minute).unwrap(), Plan::single(from, to, minute).unwrap());
        for limit in [3, 1000] {
            assert_eq!(store.top_ads(TENANT, &plan, limit).await.unwrap(), store.top_ads(TENANT, &single, limit).await.unwrap(), "top ads [{from}, {to})");
            assert_eq!(
                store.dimension_values(TENANT, "country", &plan, limit).await.unwrap(),
                store.dimension_values(TENANT, "country", &single, limit).await.unwrap(),
                "dimension values [{from}, {to})"
            );
            assert_eq!(
                store.refused_reasons(TENANT, &plan, limit).await.unwrap(),
                store.refused_reasons(TENANT, &single, limit).await.unwrap(),
                "refused [{from}, {to})"
            );
        }
        for ad in [1, 5, 12, 99] {
            assert_eq!(store.totals(TENANT, ad, &plan).await.unwrap(), store.totals(TENANT, ad, &single).await.unwrap(), "totals of ad {ad} [{from}, {to})");
        }
        if !plan.read(Resolution::Hour).is_empty() || !plan.read(Resolution::Day).is_empty() {
            compared += 1;
        }
    }
    // The ranges exercised the coarser rollups, not only the minute one.
    assert!(compared > 10, "only {compared} ranges read hours or days");
    // A plan reading a table a query lacks is refused, not answered in part.
    assert!(store.dimension_values(TENANT, "country", &Plan::new(START + 1, START + 90, Resolution::Second).unwrap(), 10).await.is_err());
    server.stop().await;
}
