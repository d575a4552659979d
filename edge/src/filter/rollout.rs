//! How an active version and a candidate in rollout combine into the one
//! answer a request gets, and what is recorded to compare them. Sans-IO.
//!
//! * No candidate: the active answer (or its failure) is the answer.
//! * Shadow: the active answer applies; the candidate's codes are only
//!   compared with the active ones. A failing shadow costs nothing.
//! * Canary of p%: click i takes the candidate's code and tags if its id
//!   hashes into the first p of 100 buckets, else the active's; a re-sent
//!   click lands on the same side. A failing candidate costs nothing either:
//!   its clicks take the active answer (and the failure is recorded), so a
//!   bad canary never puts more than the active version's own failures on
//!   the tenant's policy.
//!
//! The per-click comparison travels with the click and is counted only for
//! clicks the edge decides (first sightings), like the clicks themselves.

use tally_filter::answer::{Answer, Tags};
use tally_filter::manifest::Mode;
use tally_model::batch::CODE_FAILED;

use super::failure::NoAnswer;

// A filter cannot answer the code failures are recorded with (the answer check refuses it).
const _: () = assert!(tally_filter::answer::RESERVED_CODE == CODE_FAILED);

/// Whether a click (by its 128-bit id) is in a canary of `percent`.
pub fn in_canary(key: u128, percent: u8) -> bool {
    ((key as u64 ^ (key >> 64) as u64) % 100) < percent as u64
}

/// A version's result for a batch.
pub struct Ran {
    pub version: u32,
    pub result: Result<Answer, NoAnswer>,
}

/// Which versions a request's comparisons are between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    pub active_version: u32,
    pub candidate_version: u32,
    pub mode: Mode,
}

/// What both versions answered for one click, and whose answer applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Compared {
    pub applied_candidate: bool,
    /// `CODE_FAILED` when that version failed.
    pub active_code: u16,
    pub candidate_code: u16,
}

/// One request's answer (or why there is none) and, with a candidate in
/// rollout, the versions compared and one comparison per click.
#[derive(Debug)]
pub struct Judged {
    pub answer: Result<Answer, NoAnswer>,
    pub rollout: Option<(Rollout, Vec<Compared>)>,
}

impl Judged {
    pub fn failed(why: NoAnswer) -> Judged {
        Judged { answer: Err(why), rollout: None }
    }
}

/// The combined answer for a batch whose clicks have ids `keys`, and with a
/// candidate, the versions compared and one comparison per click.
pub fn combine(active: Ran, candidate: Option<(Ran, Mode)>, keys: &[u128]) -> Judged {
    let Some((candidate, mode)) = candidate else { return Judged { answer: active.result, rollout: None } };
    let code = |r: &Result<Answer, NoAnswer>, i: usize| r.as_ref().map_or(CODE_FAILED, |a| a.codes[i]);
    let canary = |i: usize| match (mode, &candidate.result) {
        (Mode::Canary { percent }, Ok(_)) => in_canary(keys[i], percent),
        _ => false,
    };
    let compared: Vec<Compared> = (0..keys.len())
        .map(|i| Compared { applied_candidate: canary(i), active_code: code(&active.result, i), candidate_code: code(&candidate.result, i) })
        .collect();
    let rollout = Rollout { active_version: active.version, candidate_version: candidate.version, mode };
    let applied = match &candidate.result {
        Ok(c) if (0..keys.len()).any(canary) => pick(active.result, c, keys.len(), canary),
        _ => active.result,
    };
    // An answer that failed applied neither side.
    let compared = match applied {
        Ok(_) => compared,
        Err(_) => compared.into_iter().map(|c| Compared { applied_candidate: false, ..c }).collect(),
    };
    Judged { answer: applied, rollout: Some((rollout, compared)) }
}

/// [`combine`] for each of the requests that shared a call: `lens[i]`
/// clicks each, in order, `keys` theirs. Each request is combined on its
/// own, as if it had been called alone (a failed side costs only the
/// requests that need it).
pub fn combine_parts(active: Ran, candidate: Option<(Ran, Mode)>, keys: &[u128], lens: &[usize]) -> Vec<Judged> {
    let split = |r: Result<Answer, NoAnswer>| -> Vec<Result<Answer, NoAnswer>> {
        match r {
            Ok(a) => a.split(lens).into_iter().map(Ok).collect(),
            Err(e) => lens.iter().map(|_| Err(e.clone())).collect(),
        }
    };
    let (active_version, actives) = (active.version, split(active.result));
    let mut candidates: Vec<Option<(Ran, Mode)>> = match candidate {
        Some((c, mode)) => split(c.result).into_iter().map(|result| Some((Ran { version: c.version, result }, mode))).collect(),
        None => lens.iter().map(|_| None).collect(),
    };
    let mut start = 0;
    actives
        .into_iter()
        .zip(lens)
        .enumerate()
        .map(|(i, (result, &len))| {
            let part = &keys[start..start + len];
            start += len;
            combine(Ran { version: active_version, result }, candidates[i].take(), part)
        })
        .collect()
}

/// Per click, the code and tags of the side `canary(i)` names; the active
/// side is needed (and must have answered) only if some click is not in it.
fn pick(active: Result<Answer, NoAnswer>, candidate: &Answer, clicks: usize, canary: impl Fn(usize) -> bool) -> Result<Answer, NoAnswer> {
    let active = match active {
        Ok(a) => Some(a),
        Err(e) if (0..clicks).any(|i| !canary(i)) => return Err(e),
        Err(_) => None,
    };
    let side = |i: usize| if canary(i) { candidate } else { active.as_ref().expect("answered: a click needs it") };
    let codes = (0..clicks).map(|i| side(i).codes[i]).collect();
    let mut tags: Tags = candidate.tags.iter().filter(|t| canary(t.click as usize)).collect();
    if let Some(a) = &active {
        a.tags.iter().filter(|t| !canary(t.click as usize)).for_each(|t| tags.push(t));
    }
    Ok(Answer { codes, tags })
}

#[cfg(test)]
mod tests {
    use tally_filter::answer::Tag;
    use tally_filter::failure::Failure;

    use super::*;

    fn trap() -> NoAnswer {
        NoAnswer::Call { plugin: "p".into(), version: 2, failure: Failure::Trap("trap".into()) }
    }

    fn answer(codes: &[u16], tag_all: &str) -> Answer {
        let tags = (0..codes.len() as u32).map(|click| Tag { click, key: "v", value: tag_all }).collect();
        Answer { codes: codes.to_vec(), tags }
    }

    fn keys(n: u128) -> Vec<u128> {
        (0..n).map(|i: u128| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834)).collect()
    }

    fn tag_of(a: &Answer, i: usize) -> &str {
        a.tags.iter().find(|t| t.click as usize == i).unwrap().value
    }

    #[test]
    fn canary_share_is_about_its_percent_and_stable() {
        let keys = keys(10_000);
        let n = keys.iter().filter(|k| in_canary(**k, 10)).count();
        assert!((800..1200).contains(&n), "{n}");
        assert!(keys.iter().all(|k| in_canary(*k, 10) == in_canary(*k, 10) && in_canary(*k, 100) && !in_canary(*k, 0)));
    }

    #[test]
    fn shadow_applies_the_active_answer_and_compares_both() {
        let k = keys(4);
        let Judged { answer: applied, rollout } = combine(
            Ran { version: 1, result: Ok(answer(&[0, 0, 1, 1], "a")) },
            Some((Ran { version: 2, result: Ok(answer(&[0, 3, 1, 3], "c")) }, Mode::Shadow)),
            &k,
        );
        assert_eq!(applied.unwrap(), answer(&[0, 0, 1, 1], "a"));
        let (r, compared) = rollout.unwrap();
        assert_eq!(r, Rollout { active_version: 1, candidate_version: 2, mode: Mode::Shadow });
        let got: Vec<_> = compared.iter().map(|c| (c.applied_candidate, c.active_code, c.candidate_code)).collect();
        assert_eq!(got, vec![(false, 0, 0), (false, 0, 3), (false, 1, 1), (false, 1, 3)]);
        // A failing shadow is recorded, never applied.
        let Judged { answer: applied, rollout } =
            combine(Ran { version: 1, result: Ok(answer(&[0; 4], "a")) }, Some((Ran { version: 2, result: Err(trap()) }, Mode::Shadow)), &k);
        assert!(applied.is_ok());
        assert!(rollout.unwrap().1.iter().all(|c| c.candidate_code == CODE_FAILED));
    }

    #[test]
    fn canary_takes_code_and_tags_from_the_side_of_each_click() {
        let k = keys(200);
        let mode = Mode::Canary { percent: 30 };
        let Judged { answer: applied, rollout } =
            combine(Ran { version: 1, result: Ok(answer(&[0; 200], "a")) }, Some((Ran { version: 2, result: Ok(answer(&[5; 200], "c")) }, mode)), &k);
        let applied = applied.unwrap();
        for (i, key) in k.iter().enumerate() {
            let want = if in_canary(*key, 30) { (5, "c") } else { (0, "a") };
            assert_eq!((applied.codes[i], tag_of(&applied, i)), want);
        }
        assert_eq!(applied.tags.len(), 200);
        let (r, compared) = rollout.unwrap();
        assert_eq!(r.mode, mode);
        assert_eq!(compared.iter().filter(|c| c.applied_candidate).count(), k.iter().filter(|key| in_canary(**key, 30)).count());
    }

    #[test]
    fn a_failing_canary_falls_back_to_the_active_answer() {
        let k = keys(200);
        let failed = Some((Ran { version: 2, result: Err(trap()) }, Mode::Canary { percent: 30 }));
        let Judged { answer: applied, rollout } = combine(Ran { version: 1, result: Ok(answer(&[0; 200], "a")) }, failed, &k);
        assert_eq!(applied.unwrap(), answer(&[0; 200], "a"));
        assert!(rollout.unwrap().1.iter().all(|c| !c.applied_candidate && c.candidate_code == CODE_FAILED));
        // With the active version failed, only an all-canary batch gets by.
        let ok = || Some((Ran { version: 2, result: Ok(answer(&[0; 200], "c")) }, Mode::Canary { percent: 100 }));
        assert!(combine(Ran { version: 1, result: Err(trap()) }, ok(), &k).answer.is_ok());
        let half = Some((Ran { version: 2, result: Ok(answer(&[0; 200], "c")) }, Mode::Canary { percent: 50 }));
        let Judged { answer: applied, rollout } = combine(Ran { version: 1, result: Err(trap()) }, half, &k);
        assert_eq!(applied.unwrap_err(), trap());
        assert!(rollout.unwrap().1.iter().all(|c| !c.applied_candidate), "nothing applied");
    }

    /// Requests that shared a call are combined one by one: with the active
    /// version failed, a request whose clicks are all in the canary still
    /// gets the candidate's answer, whatever its neighbours need.
    #[test]
    fn shared_calls_combine_per_request() {
        let k = keys(400);
        let (all_canary, active_side): (Vec<u128>, Vec<u128>) = k.iter().partition(|key| in_canary(**key, 30));
        let keys = [&all_canary[..20], &active_side[..10], &all_canary[20..21]].concat();
        let lens = [20, 10, 1];
        let candidate = || Some((Ran { version: 2, result: Ok(answer(&[7; 31], "c")) }, Mode::Canary { percent: 30 }));
        let parts = combine_parts(Ran { version: 1, result: Err(trap()) }, candidate(), &keys, &lens);
        assert_eq!(parts[0].answer.as_ref().unwrap(), &answer(&[7; 20], "c"), "tags renumbered within the request");
        assert_eq!(parts[1].answer.as_ref().unwrap_err(), &trap());
        assert_eq!(parts[2].answer.as_ref().unwrap(), &answer(&[7], "c"));
        let compared: Vec<usize> = parts.iter().map(|p| p.rollout.as_ref().unwrap().1.len()).collect();
        assert_eq!(compared, lens);
        // Without a candidate, each request gets its part of the active answer.
        let parts = combine_parts(Ran { version: 1, result: Ok(answer(&[0, 1, 2], "a")) }, None, &keys[..3], &[2, 1]);
        assert_eq!((parts[0].answer.as_ref().unwrap(), parts[1].answer.as_ref().unwrap()), (&answer(&[0, 1], "a"), &answer(&[2], "a")));
    }
}
