//! Per-second pre-aggregation by event time.
//!
//! Clicks are summed per `(tenant, ad, campaign, second of ts)` between two
//! seals. An out-of-order click simply lands in its own second's row; since
//! ClickHouse sums rows of the same key, a second that appears in several
//! batches is still counted right. Sans-IO and deterministic: `seal` returns
//! rows in a fixed order, so the same clicks always make the same batch.

use std::collections::{BTreeMap, HashMap};

use tally_model::batch::{SecondRow, TenantRows};
use tally_model::tenant::TenantId;

use crate::ingest::event::Click;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RowKey {
    ad_id: u64,
    campaign_id: u64,
    second: u32,
}

#[derive(Debug, Default)]
struct Acc {
    clicks: u64,
    spend_micros: u64,
    user_hashes: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct Aggregator {
    tenants: HashMap<TenantId, HashMap<RowKey, Acc>>,
    clicks: u64,
}

impl Aggregator {
    pub fn add(&mut self, tenant: &TenantId, click: &Click) {
        let rows = match self.tenants.get_mut(tenant) {
            Some(rows) => rows,
            None => self.tenants.entry(tenant.clone()).or_default(),
        };
        let acc = rows
            .entry(RowKey { ad_id: click.ad_id, campaign_id: click.campaign_id, second: click.second() })
            .or_default();
        acc.clicks += 1;
        acc.spend_micros = acc.spend_micros.saturating_add(click.cost_micros);
        if let Some(u) = click.user_hash {
            acc.user_hashes.push(u);
        }
        self.clicks += 1;
    }

    /// Clicks added since the last seal.
    pub fn pending_clicks(&self) -> u64 {
        self.clicks
    }

    /// Takes everything added since the last seal, tenants and rows sorted.
    pub fn seal(&mut self) -> Vec<TenantRows> {
        self.clicks = 0;
        let sorted: BTreeMap<TenantId, HashMap<RowKey, Acc>> = self.tenants.drain().collect();
        sorted
            .into_iter()
            .map(|(tenant, rows)| {
                let sorted: BTreeMap<RowKey, Acc> = rows.into_iter().collect();
                let rows = sorted
                    .into_iter()
                    .map(|(k, mut acc)| {
                        acc.user_hashes.sort_unstable();
                        acc.user_hashes.dedup();
                        SecondRow {
                            ad_id: k.ad_id,
                            campaign_id: k.campaign_id,
                            second: k.second,
                            clicks: acc.clicks,
                            spend_micros: acc.spend_micros,
                            user_hashes: acc.user_hashes,
                        }
                    })
                    .collect();
                TenantRows { tenant: tenant.to_string(), rows }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn click(ad_id: u64, ts_ms: u64, cost: u64, user: Option<u64>) -> Click {
        Click { key: 0, ad_id, campaign_id: ad_id % 2, ts_ms, cost_micros: cost, user_hash: user }
    }

    proptest! {
        /// Whatever the order and however the stream is cut into seals, the
        /// sums per (tenant, ad, second) equal a direct count, users are the
        /// distinct users per seal, and rows come out sorted and unique.
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
                agg.add(&tenants[tenant as usize], &c);
                let e = want.entry((tenants[tenant as usize].to_string(), ad, c.second())).or_default();
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

    #[test]
    fn out_of_order_lands_in_own_second() {
        let t = TenantId::parse("t").unwrap();
        let mut agg = Aggregator::default();
        agg.add(&t, &click(1, 5_000, 1, Some(9)));
        agg.add(&t, &click(1, 3_500, 2, Some(9)));
        agg.add(&t, &click(1, 5_999, 3, Some(9)));
        let rows = agg.seal().remove(0).rows;
        assert_eq!(rows.iter().map(|r| (r.second, r.clicks, r.spend_micros)).collect::<Vec<_>>(), vec![(3, 1, 2), (5, 2, 4)]);
        assert_eq!(rows[1].user_hashes, vec![9]);
        assert!(agg.seal().is_empty());
    }
}
