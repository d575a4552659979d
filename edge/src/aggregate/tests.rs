use proptest::prelude::*;
use tally_model::batch::{ClickRecord, RefusalReason, MODE_CANARY};

use crate::ingest::record::{WalClick, WalTag};

use super::*;

fn click(ad_id: u64, ts_ms: u64, cost: u64, user: Option<u64>) -> WalClick {
    WalClick {
        record: ClickRecord { id_hi: ts_ms, id_lo: ad_id, ad_id, campaign_id: ad_id % 2, ts_ms, cost_micros: cost, verdict: 0, accepted_ms: 0 },
        user_hash: user,
    }
}

proptest! {
    /// Whatever the order and however the stream is cut into seals, the
    /// sums per (tenant, ad, second) equal a direct count, rows come out
    /// sorted and unique, and each seal's rows agree with its click records.
    #[test]
    fn sums_match_direct_count(
        clicks in proptest::collection::vec((0u8..3, 0u64..4, 0u64..5_000, 0u64..1000, proptest::option::of(0u64..5), any::<bool>()), 0..300)
    ) {
        let tenants: Vec<TenantId> = ["a", "b", "c"].iter().map(|t| TenantId::parse(t).unwrap()).collect();
        let mut agg = Aggregator::default();
        let mut want: BTreeMap<(String, u64, u32), (u64, u64)> = BTreeMap::new();
        let mut got: BTreeMap<(String, u64, u32), (u64, u64)> = BTreeMap::new();
        let take = |agg: &mut Aggregator, got: &mut BTreeMap<_, (u64, u64)>| {
            for t in agg.seal() {
                let keys: Vec<_> = t.rows.iter().map(|r| (r.ad_id, r.campaign_id, r.second)).collect();
                let mut sorted = keys.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(keys, sorted);
                assert_eq!(t.rows.iter().map(|r| r.clicks).sum::<u64>(), t.clicks.len() as u64);
                assert_eq!(t.rows.iter().map(|r| r.spend_micros).sum::<u64>(), t.clicks.iter().map(|c| c.cost_micros).sum::<u64>());
                for r in t.rows {
                    assert!(r.user_hashes.len() as u64 <= r.clicks);
                    assert!(r.user_hashes.windows(2).all(|w| w[0] < w[1]));
                    let e = got.entry((t.tenant.clone(), r.ad_id, r.second)).or_default();
                    e.0 += r.clicks;
                    e.1 += r.spend_micros;
                }
            }
        };
        for (tenant, ad, ts, cost, user, cut) in clicks {
            let c = click(ad, 1_700_000_000_000 + ts, cost, user);
            agg.add_record(&tenants[tenant as usize], &record(vec![c]));
            let e = want.entry((tenants[tenant as usize].to_string(), ad, c.record.second())).or_default();
            e.0 += 1;
            e.1 += cost;
            if cut {
                take(&mut agg, &mut got);
            }
        }
        take(&mut agg, &mut got);
        prop_assert_eq!(got, want);
        prop_assert_eq!(agg.pending_clicks(), 0);
    }
}

fn record(clicks: Vec<WalClick>) -> WalRecord {
    WalRecord { lsn: 0, tenant: "t".into(), clicks, refused: vec![], tags: vec![], verdicts: vec![] }
}

#[test]
fn out_of_order_lands_in_own_second_and_refusals_are_kept() {
    let t = TenantId::parse("t").unwrap();
    let mut agg = Aggregator::default();
    agg.add_record(&t, &record(vec![click(1, 5_000, 1, Some(9)), click(1, 3_500, 2, Some(9))]));
    agg.add_record(&t, &record(vec![click(1, 5_999, 3, Some(9))]));
    let refused = RefusedRecord { id_hi: 1, id_lo: 1, ad_id: 1, ts_ms: 1, reason: RefusalReason::TooLate, code: 0, at_ms: 9 };
    agg.add_record(&t, &WalRecord { refused: vec![refused], ..record(vec![]) });
    let sealed = agg.seal().remove(0);
    let rows = sealed.rows;
    assert_eq!(rows.iter().map(|r| (r.second, r.clicks, r.spend_micros)).collect::<Vec<_>>(), vec![(3, 1, 2), (5, 2, 4)]);
    assert_eq!(rows[1].user_hashes, vec![9]);
    assert_eq!(sealed.clicks.iter().map(|c| c.ts_ms).collect::<Vec<_>>(), vec![5_000, 3_500, 5_999]);
    assert_eq!(sealed.refused, vec![refused]);
    assert!(agg.seal().is_empty());
}

#[test]
fn tags_count_per_dimension_value_and_verdicts_sum_per_key() {
    let t = TenantId::parse("t").unwrap();
    let mut agg = Aggregator::default();
    let tag = |click, value: &str| WalTag { click, dimension: "country".into(), value: value.into() };
    let verdict = |clicks| VerdictRow {
        minute: 7,
        active_version: 1,
        candidate_version: 2,
        mode: MODE_CANARY,
        applied_candidate: true,
        active_code: 0,
        candidate_code: 3,
        clicks,
    };
    for _ in 0..2 {
        let r = WalRecord {
            tags: vec![tag(0, "DE"), tag(1, "DE"), tag(2, "FR")],
            verdicts: vec![verdict(2)],
            ..record(vec![click(1, 5_000, 10, None), click(1, 5_500, 20, None), click(2, 5_100, 5, None)])
        };
        agg.add_record(&t, &r);
    }
    let sealed = agg.seal().remove(0);
    let dims: Vec<_> = sealed.dims.iter().map(|d| (d.ad_id, d.value.as_str(), d.clicks, d.spend_micros)).collect();
    assert_eq!(dims, vec![(1, "DE", 4, 60), (2, "FR", 2, 10)]);
    assert_eq!(sealed.verdicts, vec![verdict(4)]);
}
