//! How an active version and a candidate in rollout combine into the one
//! answer a request gets, and what is recorded to compare them. Sans-IO.
//!
//! * No candidate: the active answer (or its failure) is the answer.
//! * Shadow: the active answer applies; the candidate's codes are only
//!   counted next to the active ones. A failing shadow costs nothing.
//! * Canary of p%: click i takes the candidate's code and tags if its id
//!   hashes into the first p of 100 buckets, else the active's; a re-sent
//!   click lands on the same side. If a version whose answer is needed
//!   failed, the batch failed (and the tenant's policy applies).

use std::collections::BTreeMap;

use tally_filter::answer::Answer;
use tally_filter::manifest::Mode;
use tally_model::batch::{VerdictRow, CODE_FAILED, MODE_CANARY, MODE_SHADOW};

/// Whether a click (by its 128-bit id) is in a canary of `percent`.
pub fn in_canary(key: u128, percent: u8) -> bool {
    ((key as u64 ^ (key >> 64) as u64) % 100) < percent as u64
}

/// A version's result for a batch.
pub struct Ran {
    pub version: u32,
    pub result: Result<Answer, String>,
}

/// Combines the results for a batch whose clicks have ids `keys`.
pub fn combine(active: Ran, candidate: Option<(Ran, Mode)>, keys: &[u128], minute: u32) -> (Result<Answer, String>, Vec<VerdictRow>) {
    let Some((candidate, mode)) = candidate else { return (active.result, Vec::new()) };
    let code = |r: &Result<Answer, String>, i: usize| r.as_ref().map_or(CODE_FAILED, |a| a.codes[i]);
    let canary = |i: usize| match mode {
        Mode::Shadow => false,
        Mode::Canary { percent } => in_canary(keys[i], percent),
    };
    let mut counts: BTreeMap<(bool, u16, u16), u64> = BTreeMap::new();
    for i in 0..keys.len() {
        *counts.entry((canary(i), code(&active.result, i), code(&candidate.result, i))).or_default() += 1;
    }
    let rows = counts
        .into_iter()
        .map(|((applied_candidate, active_code, candidate_code), clicks)| VerdictRow {
            minute,
            active_version: active.version,
            candidate_version: candidate.version,
            mode: if mode == Mode::Shadow { MODE_SHADOW } else { MODE_CANARY },
            applied_candidate,
            active_code,
            candidate_code,
            clicks,
        })
        .collect();
    let applied = match mode {
        Mode::Shadow => active.result,
        Mode::Canary { .. } => pick(active.result, candidate.result, keys.len(), canary),
    };
    (applied, rows)
}

/// Per click, the code and tags of the side `canary(i)` names.
fn pick(active: Result<Answer, String>, candidate: Result<Answer, String>, clicks: usize, canary: impl Fn(usize) -> bool) -> Result<Answer, String> {
    let needs = |want: bool| (0..clicks).any(|i| canary(i) == want);
    let active = match active {
        Err(e) if needs(false) => return Err(e),
        other => other.ok(),
    };
    let candidate = match candidate {
        Err(e) if needs(true) => return Err(format!("candidate: {e}")),
        other => other.ok(),
    };
    let side = |i: usize| if canary(i) { candidate.as_ref() } else { active.as_ref() }.expect("a needed side answered");
    let codes = (0..clicks).map(|i| side(i).codes[i]).collect();
    let mut tags = Vec::new();
    if let Some(a) = &active {
        tags.extend(a.tags.iter().filter(|t| !canary(t.click as usize)).cloned());
    }
    if let Some(c) = &candidate {
        tags.extend(c.tags.iter().filter(|t| canary(t.click as usize)).cloned());
    }
    Ok(Answer { codes, tags })
}

#[cfg(test)]
mod tests {
    use tally_filter::answer::Tag;

    use super::*;

    fn answer(codes: &[u16], tag_all: &str) -> Answer {
        let tags = (0..codes.len() as u32).map(|click| Tag { click, key: "v".into(), value: tag_all.into() }).collect();
        Answer { codes: codes.to_vec(), tags }
    }

    fn keys(n: u128) -> Vec<u128> {
        (0..n).map(|i: u128| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834)).collect()
    }

    #[test]
    fn canary_share_is_about_its_percent_and_stable() {
        let keys = keys(10_000);
        let n = keys.iter().filter(|k| in_canary(**k, 10)).count();
        assert!((800..1200).contains(&n), "{n}");
        assert!(keys.iter().all(|k| in_canary(*k, 10) == in_canary(*k, 10) && in_canary(*k, 100) && !in_canary(*k, 0)));
    }

    #[test]
    fn shadow_applies_the_active_answer_and_counts_both() {
        let k = keys(4);
        let (applied, rows) = combine(
            Ran { version: 1, result: Ok(answer(&[0, 0, 1, 1], "a")) },
            Some((Ran { version: 2, result: Ok(answer(&[0, 3, 1, 3], "c")) }, Mode::Shadow)),
            &k,
            9,
        );
        assert_eq!(applied.unwrap(), answer(&[0, 0, 1, 1], "a"));
        let got: Vec<_> = rows.iter().map(|r| (r.applied_candidate, r.active_code, r.candidate_code, r.clicks, r.mode)).collect();
        assert_eq!(got, vec![(false, 0, 0, 1, MODE_SHADOW), (false, 0, 3, 1, MODE_SHADOW), (false, 1, 1, 1, MODE_SHADOW), (false, 1, 3, 1, MODE_SHADOW)]);
        // A failing shadow is recorded, never applied.
        let (applied, rows) = combine(Ran { version: 1, result: Ok(answer(&[0; 4], "a")) }, Some((Ran { version: 2, result: Err("trap".into()) }, Mode::Shadow)), &k, 9);
        assert!(applied.is_ok());
        assert_eq!((rows[0].candidate_code, rows[0].clicks), (CODE_FAILED, 4));
    }

    #[test]
    fn canary_takes_code_and_tags_from_the_side_of_each_click() {
        let k = keys(200);
        let active = answer(&[0; 200], "a");
        let candidate = answer(&[5; 200], "c");
        let mode = Mode::Canary { percent: 30 };
        let (applied, rows) = combine(Ran { version: 1, result: Ok(active) }, Some((Ran { version: 2, result: Ok(candidate) }, mode)), &k, 9);
        let applied = applied.unwrap();
        for (i, key) in k.iter().enumerate() {
            let want = if in_canary(*key, 30) { (5, "c") } else { (0, "a") };
            assert_eq!((applied.codes[i], applied.tags.iter().find(|t| t.click as usize == i).unwrap().value.as_str()), want);
        }
        assert_eq!(applied.tags.len(), 200);
        let to_candidate: u64 = rows.iter().filter(|r| r.applied_candidate).map(|r| r.clicks).sum();
        assert_eq!(to_candidate as usize, k.iter().filter(|key| in_canary(**key, 30)).count());
        // The canary's failure fails the batch only if a click needed it.
        let failed = || Some((Ran { version: 2, result: Err("trap".into()) }, mode));
        let (applied, _) = combine(Ran { version: 1, result: Ok(answer(&[0; 200], "a")) }, failed(), &k, 9);
        assert!(applied.unwrap_err().contains("candidate: trap"));
        let outside: Vec<u128> = k.iter().copied().filter(|key| !in_canary(*key, 30)).take(3).collect();
        let (applied, _) = combine(Ran { version: 1, result: Ok(answer(&[0; 3], "a")) }, failed(), &outside, 9);
        assert_eq!(applied.unwrap().codes, vec![0; 3]);
    }
}
