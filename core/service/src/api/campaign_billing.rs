//! Billing per campaign, pure: the exact billing per hour and ad (statements
//! for final hours, click records otherwise: `routes::billed_hours`) grouped
//! by the campaign the ad's clicks named in that hour.
//!
//! Billing's own sources (click records, statements) hold no campaign, so an
//! ad's campaign in an hour comes from the hourly campaign rollup
//! (`campaign_of_ads.sql`). Invariant: nothing is split by guess. An ad whose
//! clicks in an hour named exactly one campaign adds its billed clicks,
//! spend, adjustments and filtered clicks to that campaign; an ad that named
//! several (the same ad sent with different `campaign_id`s) or none the
//! rollup shows (only filtered clicks, or a rollup still being healed) is
//! listed under `unattributed` with the campaigns it named. So per hour the
//! campaigns plus the unattributed ads add up to exactly `/v1/billing`, and
//! `final` is the same per hour.

use std::collections::BTreeMap;

use serde::Serialize;

use super::routes::BillingHour;
use crate::clickhouse::campaigns::AdCampaigns;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CampaignBill {
    pub campaign_id: u64,
    pub clicks: i64,
    pub spend_micros: i64,
    pub adjustments: u64,
    pub filtered: u64,
    /// The ads billed under this campaign in this hour.
    pub ads: Vec<u64>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Unattributed {
    pub ad_id: u64,
    /// The campaigns the ad's clicks named in this hour: several, or none seen.
    pub campaigns: Vec<u64>,
    pub clicks: i64,
    pub spend_micros: i64,
    pub adjustments: u64,
    pub filtered: u64,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CampaignHour {
    /// Hour start, ms since the epoch.
    pub hour: u64,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub campaigns: Vec<CampaignBill>,
    pub unattributed: Vec<Unattributed>,
}

/// Groups each hour's billed ads by campaign (see the module).
pub fn by_campaign(hours: Vec<BillingHour>, ad_campaigns: &[AdCampaigns]) -> Vec<CampaignHour> {
    let named: BTreeMap<(u64, u64), &[u64]> = ad_campaigns.iter().map(|a| ((a.hour as u64 * 1000, a.ad_id), a.campaigns.as_slice())).collect();
    hours
        .into_iter()
        .map(|h| {
            let mut campaigns: BTreeMap<u64, CampaignBill> = BTreeMap::new();
            let mut unattributed = Vec::new();
            for ad in h.ads {
                match named.get(&(h.hour, ad.ad_id)).copied().unwrap_or(&[]) {
                    &[campaign_id] => {
                        let c = campaigns.entry(campaign_id).or_insert(CampaignBill {
                            campaign_id,
                            clicks: 0,
                            spend_micros: 0,
                            adjustments: 0,
                            filtered: 0,
                            ads: Vec::new(),
                        });
                        c.clicks += ad.clicks;
                        c.spend_micros += ad.spend_micros;
                        c.adjustments += ad.adjustments;
                        c.filtered += ad.filtered;
                        c.ads.push(ad.ad_id);
                    }
                    several_or_none => unattributed.push(Unattributed {
                        ad_id: ad.ad_id,
                        campaigns: several_or_none.to_vec(),
                        clicks: ad.clicks,
                        spend_micros: ad.spend_micros,
                        adjustments: ad.adjustments,
                        filtered: ad.filtered,
                    }),
                }
            }
            CampaignHour { hour: h.hour, is_final: h.is_final, campaigns: campaigns.into_values().collect(), unattributed }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::routes::BilledAd;
    use super::*;

    const H: u64 = 1_700_002_800;

    fn ad(ad_id: u64, clicks: i64, filtered: u64) -> BilledAd {
        BilledAd { ad_id, clicks, spend_micros: clicks * 10, adjustments: clicks as u64 % 2, filtered }
    }

    fn named(hour: u64, ad_id: u64, campaigns: &[u64]) -> AdCampaigns {
        AdCampaigns { hour: hour as u32, ad_id, campaigns: campaigns.to_vec() }
    }

    #[test]
    fn groups_by_the_one_campaign_and_keeps_the_rest_apart() {
        let hours = vec![
            BillingHour { hour: H * 1000, is_final: true, ads: vec![ad(1, 3, 0), ad(2, 4, 1), ad(3, 5, 0), ad(4, 0, 2)] },
            BillingHour { hour: (H + 3600) * 1000, is_final: false, ads: vec![ad(1, 7, 0)] },
        ];
        // ad 2 belongs to campaign 9 like ad 1; ad 3 named two campaigns; ad 4 (filtered only) none;
        // in the next hour ad 1 named campaign 8.
        let of = [named(H, 1, &[9]), named(H, 2, &[9]), named(H, 3, &[5, 9]), named(H + 3600, 1, &[8])];
        let got = by_campaign(hours, &of);
        assert_eq!(got[0].campaigns, [CampaignBill { campaign_id: 9, clicks: 7, spend_micros: 70, adjustments: 1, filtered: 1, ads: vec![1, 2] }]);
        assert_eq!(
            got[0].unattributed,
            [
                Unattributed { ad_id: 3, campaigns: vec![5, 9], clicks: 5, spend_micros: 50, adjustments: 1, filtered: 0 },
                Unattributed { ad_id: 4, campaigns: vec![], clicks: 0, spend_micros: 0, adjustments: 0, filtered: 2 },
            ]
        );
        assert!(got[0].is_final && !got[1].is_final);
        assert_eq!(got[1].campaigns[0].campaign_id, 8);
    }

    proptest! {
        /// Campaigns plus unattributed ads hold every billed ad of the hour exactly once.
        #[test]
        fn every_billed_ad_is_counted_once(
            ads in proptest::collection::btree_map(0u64..20, (0i64..1000, 0u64..50), 0..15),
            of in proptest::collection::btree_map(0u64..25, proptest::collection::btree_set(0u64..4, 0..3), 0..20),
        ) {
            let billed: Vec<BilledAd> = ads.iter().map(|(&id, &(c, f))| ad(id, c, f)).collect();
            let (clicks, filtered): (i64, u64) = (billed.iter().map(|a| a.clicks).sum(), billed.iter().map(|a| a.filtered).sum());
            let of: Vec<AdCampaigns> = of.iter().map(|(&id, cs)| named(H, id, &cs.iter().copied().collect::<Vec<_>>())).collect();
            let got = by_campaign(vec![BillingHour { hour: H * 1000, is_final: false, ads: billed }], &of);
            let h = &got[0];
            let mut seen: Vec<u64> = h.campaigns.iter().flat_map(|c| c.ads.iter().copied()).chain(h.unattributed.iter().map(|u| u.ad_id)).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, ads.keys().copied().collect::<Vec<_>>());
            prop_assert_eq!(h.campaigns.iter().map(|c| c.clicks).sum::<i64>() + h.unattributed.iter().map(|u| u.clicks).sum::<i64>(), clicks);
            prop_assert_eq!(h.campaigns.iter().map(|c| c.filtered).sum::<u64>() + h.unattributed.iter().map(|u| u.filtered).sum::<u64>(), filtered);
            prop_assert!(h.unattributed.iter().all(|u| u.campaigns.len() != 1));
        }
    }
}
