use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const HOUR: u64 = 3_600_000;
const NOW: u64 = 1_700_000_000_000;

fn policy() -> TimePolicy {
    TimePolicy { allowed_lateness_ms: HOUR, max_future_ms: 300_000, idle_lag_ms: 0 }
}

fn click(key: u128, ts_ms: u64) -> Result<Click, String> {
    Ok(Click { key, ad_id: 1, campaign_id: 0, ts_ms, cost_micros: 10, user_hash: None, verdict: 0, tags: vec![], compared: None })
}

fn pipeline() -> Pipeline {
    Pipeline::new(DedupConfig::new(HOUR, 1000), policy(), 0)
}

/// Applies as a WAL writer would: lsns in order.
fn durable(p: &mut Pipeline, mut a: Admitted) {
    a.record.lsn = p.applied_to();
    p.apply(&a);
}

#[test]
fn counts_duplicates_rejects_and_refusals() {
    let t = TenantId::parse("t").unwrap();
    let mut p = pipeline();
    let events = vec![click(1, NOW), Err("bad".into()), click(1, NOW), click(2, NOW - 2 * HOUR), click(3, NOW + HOUR), click(4, NOW - HOUR + 1)];
    let (out, admitted) = p.admit(&t, events, None, NOW);
    assert_eq!((out.accepted, out.duplicates), (2, 1));
    assert_eq!(out.rejected.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 3, 4]);
    assert!(out.rejected[1].reason.contains("older"), "{}", out.rejected[1].reason);
    assert!(out.rejected[2].reason.contains("future"));
    let admitted = admitted.unwrap();
    assert_eq!(admitted.record.refused.len(), 2);
    durable(&mut p, admitted);
    let s = p.seal(NOW, None);
    assert_eq!((s.wal_from, s.wal_to), (0, 1));
    assert_eq!(s.tenants[0].clicks.len(), 2);
    assert_eq!(s.tenants[0].refused.len(), 2);
    assert_eq!(s.low_watermark_ms, NOW - HOUR);
    // Nothing new: an empty sealing that still carries the watermark.
    let (out, admitted) = p.admit(&t, vec![click(1, NOW)], None, NOW + 1000);
    assert_eq!((out.duplicates, admitted.is_none()), (1, true));
    let empty = p.seal(NOW + 1000, None);
    assert!(empty.tenants.is_empty());
    assert_eq!((empty.wal_from, empty.wal_to, empty.low_watermark_ms), (1, 1, NOW + 1000 - HOUR));
}

/// A click refused for its event time is refused every time it is sent,
/// but recorded once (`/v1/refused` counts clicks); a future click that is
/// in range when re-sent is accepted; an aborted refusal is recorded again.
#[test]
fn time_refusals_are_recorded_once_per_click() {
    let t = TenantId::parse("t").unwrap();
    let mut p = pipeline();
    let (late, future) = (click(2, NOW - 2 * HOUR), click(3, NOW + HOUR));
    let (out, a) = p.admit(&t, vec![late.clone(), late.clone(), future.clone()], None, NOW);
    assert_eq!(out.rejected.len(), 3);
    let a = a.unwrap();
    assert_eq!(a.record.refused.len(), 2, "the second copy of the late click is not recorded again");
    durable(&mut p, a);
    let (out, a) = p.admit(&t, vec![late.clone(), future.clone()], None, NOW + 1000);
    assert_eq!((out.rejected.len(), a.is_none()), (2, true), "refused again, recorded nothing new");
    // An hour later the "future" click is in range: accepted, not a duplicate.
    let (out, a) = p.admit(&t, vec![future], None, NOW + HOUR);
    assert_eq!((out.accepted, out.duplicates), (1, 0));
    durable(&mut p, a.unwrap());
    // A refusal whose record was never written is recorded when re-sent.
    let other = click(9, NOW - 3 * HOUR);
    let (_, a) = p.admit(&t, vec![other.clone()], None, NOW + HOUR);
    p.abort(&a.unwrap());
    let (_, a) = p.admit(&t, vec![other], None, NOW + HOUR);
    assert_eq!(a.unwrap().record.refused.len(), 1);
}

#[test]
fn aborted_clicks_count_when_retried() {
    let t = TenantId::parse("t").unwrap();
    let mut p = pipeline();
    let (_, a) = p.admit(&t, vec![click(1, NOW)], None, NOW);
    p.abort(&a.unwrap());
    let (out, a) = p.admit(&t, vec![click(1, NOW)], None, NOW);
    assert_eq!(out.accepted, 1);
    durable(&mut p, a.unwrap());
    assert_eq!(p.seal(NOW, None).tenants[0].clicks.len(), 1);
}

#[test]
fn replay_restores_dedup_and_unsealed_aggregates() {
    let t = TenantId::parse("t").unwrap();
    let mut p = pipeline();
    let mut records = Vec::new();
    for key in 0..4 {
        let (_, a) = p.admit(&t, vec![click(key, NOW)], None, NOW);
        let mut a = a.unwrap();
        a.record.lsn = key as u64;
        records.push(a.record);
    }
    // After a restart where records [0, 2) were already sealed:
    let mut q = Pipeline::new(DedupConfig::new(HOUR, 1000), policy(), 2);
    for r in &records {
        q.replay(&t, r);
    }
    let (out, _) = q.admit(&t, vec![click(0, NOW), click(3, NOW), click(9, NOW)], None, NOW + 1);
    assert_eq!((out.accepted, out.duplicates), (1, 2));
    let s = q.seal(NOW + 1, None);
    assert_eq!((s.wal_from, s.wal_to), (2, 4));
    assert_eq!(s.tenants[0].clicks.iter().map(|c| c.id_lo).collect::<Vec<_>>(), vec![2, 3]);
}

proptest! {
    /// The low watermark promise: once a sealing says w, every click admitted
    /// later has ts >= w, and every click admitted earlier with ts < w is in
    /// that sealing or an earlier one. Clicks admitted but not yet applied,
    /// and clicks the caller still holds, keep the watermark down.
    #[test]
    fn low_watermark_is_never_overtaken(
        steps in proptest::collection::vec((0u8..4, 0u64..3 * HOUR, 0u64..120_000), 1..200)
    ) {
        let t = TenantId::parse("t").unwrap();
        let mut p = pipeline();
        let mut now = NOW;
        let mut pending: Vec<Admitted> = Vec::new();
        let mut sealed_so_far: Vec<u64> = Vec::new();
        let mut max_w = 0u64;
        let mut key = 0u128;
        for (op, back, advance) in steps {
            now += advance;
            match op {
                0 | 1 => {
                    key += 1;
                    let (_, a) = p.admit(&t, vec![click(key, now.saturating_sub(back))], None, now);
                    if let Some(a) = a {
                        for c in &a.record.clicks {
                            prop_assert!(c.record.ts_ms >= max_w, "admitted ts {} below sealed watermark {max_w}", c.record.ts_ms);
                        }
                        pending.push(a);
                    }
                }
                2 => {
                    if !pending.is_empty() {
                        let a = pending.remove(0);
                        durable(&mut p, a);
                    }
                }
                _ => {
                    let s = p.seal(now, None);
                    sealed_so_far.extend(s.tenants.iter().flat_map(|t| t.clicks.iter().map(|c| c.ts_ms)));
                    for a in &pending {
                        for c in &a.record.clicks {
                            prop_assert!(c.record.ts_ms >= s.low_watermark_ms);
                        }
                    }
                    max_w = max_w.max(s.low_watermark_ms);
                }
            }
        }
    }
}

#[test]
fn watermark_follows_event_time_and_idle_lag() {
    let t = TenantId::parse("t").unwrap();
    let policy = TimePolicy { allowed_lateness_ms: 1000, max_future_ms: 1000, idle_lag_ms: 10 * HOUR };
    let mut p = Pipeline::new(DedupConfig::new(HOUR, 100), policy, 0);
    // A fresh edge takes a backfill hours old, then its watermark follows it.
    let (out, a) = p.admit(&t, vec![click(1, NOW - 3 * HOUR), click(2, NOW - 3 * HOUR + 5000)], None, NOW);
    assert_eq!(out.accepted, 2);
    assert_eq!(p.watermark_ms(), NOW - 3 * HOUR + 5000);
    durable(&mut p, a.unwrap());
    let (out, _) = p.admit(&t, vec![click(3, NOW - 3 * HOUR)], None, NOW);
    assert_eq!((out.accepted, out.rejected.len()), (0, 1));
    assert_eq!(p.seal(NOW, None).low_watermark_ms, NOW - 3 * HOUR + 4000);
    // Idle: the wall clock pulls the watermark along.
    assert_eq!(p.seal(NOW + 20 * HOUR, None).low_watermark_ms, NOW + 10 * HOUR - 1000);
}

#[test]
fn a_filtered_click_is_decided_once_and_tags_ride_with_kept_clicks() {
    let t = TenantId::parse("t").unwrap();
    let mut p = pipeline();
    let filtered = |key| Ok(Click { verdict: 3, ..click(key, NOW).unwrap() });
    let tagged = Ok(Click { tags: vec![("country".into(), "DE".into())], ..click(2, NOW).unwrap() });
    let (out, a) = p.admit(&t, vec![filtered(1), tagged], None, NOW);
    assert_eq!((out.accepted, out.duplicates, out.rejected.len()), (1, 0, 1));
    assert!(out.rejected[0].reason.contains("reason code 3"));
    let a = a.unwrap();
    assert_eq!(a.record.refused[0].reason, RefusalReason::Filtered);
    assert_eq!(a.record.tags, vec![WalTag { click: 0, dimension: "country".into(), value: "DE".into() }]);
    // Aborted: the retry is judged afresh.
    p.abort(&a);
    let (out, a) = p.admit(&t, vec![filtered(1)], None, NOW);
    assert_eq!(out.rejected.len(), 1);
    durable(&mut p, a.unwrap());
    // Re-sent, even if a new filter version would keep it: a duplicate.
    let (out, a) = p.admit(&t, vec![click(1, NOW)], None, NOW);
    assert_eq!((out.accepted, out.duplicates, out.rejected.len()), (0, 1, 0));
    assert!(a.is_none());
    let sealed = p.seal(NOW, None);
    assert_eq!(sealed.tenants[0].refused.len(), 1);
}

#[test]
fn rollout_comparisons_count_first_sightings_only() {
    let t = TenantId::parse("t").unwrap();
    let mut p = pipeline();
    let rollout = Some(Rollout { active_version: 1, candidate_version: 2, mode: tally_filter::manifest::Mode::Shadow });
    let compared =
        |key, ts, code| Ok(Click { compared: Some(Compared { applied_candidate: false, active_code: 0, candidate_code: code }), ..click(key, ts).unwrap() });
    // Two new clicks (one the candidate would drop), a duplicate in the same request, one too late.
    let events = vec![compared(1, NOW, 0), compared(2, NOW, 7), compared(1, NOW, 0), compared(3, NOW - 2 * HOUR, 0)];
    let (out, a) = p.admit(&t, events, rollout, NOW);
    assert_eq!((out.accepted, out.duplicates, out.rejected.len()), (2, 1, 1));
    let rows: Vec<_> = a.unwrap().record.verdicts.iter().map(|v| (v.candidate_code, v.clicks, v.minute, v.mode)).collect();
    let minute = (NOW / 60_000 * 60) as u32;
    assert_eq!(rows, vec![(0, 1, minute, tally_model::batch::MODE_SHADOW), (7, 1, minute, tally_model::batch::MODE_SHADOW)]);
}

#[test]
fn a_duplicate_of_a_click_in_flight_waits_for_its_write() {
    let t = TenantId::parse("t").unwrap();
    let mut p = pipeline();
    let (_, a) = p.admit(&t, vec![click(1, NOW), click(2, NOW)], None, NOW);
    // Another request repeats click 1 while its record is not yet durable.
    let (out, b) = p.admit(&t, vec![click(1, NOW), click(3, NOW), click(3, NOW)], None, NOW);
    assert_eq!((out.accepted, out.duplicates, out.awaits.clone()), (1, 2, vec![1]), "a repeat within the request waits on nothing");
    assert_eq!(p.first_sightings(&out.awaits), FirstSightings::Pending);
    durable(&mut p, b.unwrap());
    assert_eq!(p.first_sightings(&out.awaits), FirstSightings::Pending, "its own record says nothing of click 1");
    durable(&mut p, a.unwrap());
    assert_eq!(p.first_sightings(&out.awaits), FirstSightings::Durable);
    // A duplicate of a durable click (the common case) waits on nothing.
    let (out, _) = p.admit(&t, vec![click(1, NOW), click(3, NOW)], None, NOW);
    assert_eq!((out.duplicates, out.awaits.len(), p.awaited()), (2, 0, 1));
}

#[test]
fn a_duplicate_of_a_click_whose_write_failed_is_lost_unless_sent_again() {
    let t = TenantId::parse("t").unwrap();
    let mut p = pipeline();
    let filtered = Ok(Click { verdict: 3, ..click(2, NOW).unwrap() });
    let (_, a) = p.admit(&t, vec![click(1, NOW), filtered], None, NOW);
    let (out, b) = p.admit(&t, vec![click(1, NOW), click(2, NOW)], None, NOW);
    assert!(b.is_none());
    assert_eq!(out.awaits, vec![1, 2], "a filtered first sighting is in flight too");
    p.abort(&a.unwrap());
    assert_eq!(p.first_sightings(&out.awaits), FirstSightings::Lost);
    // A third request sends click 1 again: it counts, and whoever waits on
    // click 1 waits on that copy now.
    let (again, c) = p.admit(&t, vec![click(1, NOW)], None, NOW);
    assert_eq!((again.accepted, again.awaits.len()), (1, 0));
    assert_eq!(p.first_sightings(&[1]), FirstSightings::Pending);
    durable(&mut p, c.unwrap());
    assert_eq!(p.first_sightings(&[1]), FirstSightings::Durable);
    assert_eq!(p.first_sightings(&[1, 2]), FirstSightings::Lost);
}

/// A click's first sighting in the model: not known, in flight in record
/// `r` (an index into the admitted records), or durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sighting {
    InFlight(usize),
    Durable,
}

proptest! {
    /// Against a model of which first sightings are durable, in any order of
    /// admissions and settlements (applied or aborted): a request waits
    /// exactly on the duplicates of other requests' unsettled clicks; it is
    /// told `Durable` only if every such click is durable, `Lost` exactly
    /// when one was undone and not sent again; once everything is settled,
    /// nothing is pending.
    #[test]
    fn duplicates_are_acknowledged_only_when_their_first_sighting_is_durable(
        steps in proptest::collection::vec((0u8..5, proptest::collection::vec(0u128..12, 1..5), any::<prop::sample::Index>()), 1..150)
    ) {
        let t = TenantId::parse("t").unwrap();
        let mut p = pipeline();
        let mut model: HashMap<u128, Sighting> = HashMap::new();
        // Admitted records not yet settled, by model index.
        let mut unsettled: BTreeMap<usize, Admitted> = BTreeMap::new();
        let mut records = 0usize;
        // What each duplicate-holding request waits on.
        let mut waiting: Vec<Vec<u128>> = Vec::new();
        for (op, keys, pick) in steps {
            match op {
                0..=2 => {
                    let this = records;
                    let mut want_awaits = Vec::new();
                    let mut want_accepted = 0;
                    for &k in &keys {
                        match model.get(&k) {
                            None => {
                                model.insert(k, Sighting::InFlight(this));
                                want_accepted += 1;
                            }
                            Some(Sighting::InFlight(r)) if *r != this => want_awaits.push(k),
                            Some(_) => {}
                        }
                    }
                    let (out, a) = p.admit(&t, keys.into_iter().map(|k| click(k, NOW)).collect::<Vec<_>>(), None, NOW);
                    prop_assert_eq!(out.accepted, want_accepted);
                    prop_assert_eq!(&out.awaits, &want_awaits);
                    if let Some(a) = a {
                        unsettled.insert(this, a);
                        records += 1;
                    }
                    if !out.awaits.is_empty() {
                        waiting.push(out.awaits);
                    }
                }
                3 | 4 if !unsettled.is_empty() => {
                    let r = *unsettled.keys().nth(pick.index(unsettled.len())).unwrap();
                    let a = unsettled.remove(&r).unwrap();
                    let durable_now = op == 3;
                    for k in a.record.clicks.iter().map(|c| (c.record.id_hi as u128) << 64 | c.record.id_lo as u128) {
                        if durable_now {
                            model.insert(k, Sighting::Durable);
                        } else {
                            model.remove(&k);
                        }
                    }
                    if durable_now {
                        durable(&mut p, a);
                    } else {
                        p.abort(&a);
                    }
                }
                _ => {}
            }
            for keys in &waiting {
                let want = if keys.iter().any(|k| !model.contains_key(k)) {
                    FirstSightings::Lost
                } else if keys.iter().any(|k| model[k] != Sighting::Durable) {
                    FirstSightings::Pending
                } else {
                    FirstSightings::Durable
                };
                prop_assert_eq!(p.first_sightings(keys), want, "waiting on {:?}", keys);
            }
        }
        for (_, a) in std::mem::take(&mut unsettled) {
            durable(&mut p, a);
        }
        for keys in &waiting {
            prop_assert_ne!(p.first_sightings(keys), FirstSightings::Pending);
        }
    }
}
