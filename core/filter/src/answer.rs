//! A filter's answer, checked against the contract's shape and size limits
//! before the edge believes a word of it.

use crate::contract::{Strings, Verdicts};

/// Tags allowed per batch: this many per click, on average (a tenant's
/// limits may allow fewer).
pub const MAX_TAGS_PER_CLICK: usize = 4;
pub const MAX_TAG_KEY_BYTES: usize = 64;
pub const MAX_TAG_VALUE_BYTES: usize = 256;
/// The one code a filter may not answer: the host records a version that
/// failed on a batch with it (`tally_model::batch::CODE_FAILED`), so a
/// filter answering it would look like a failure in rollout comparisons.
pub const RESERVED_CODE: u16 = u16::MAX;

/// One enrichment: click `click` of the batch gets dimension `key` = `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub click: u32,
    pub key: String,
    pub value: String,
}

/// A checked answer: one code per click, tags naming clicks of the batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub codes: Vec<u16>,
    pub tags: Vec<Tag>,
}

impl Answer {
    /// Everything kept, nothing tagged: what fail-open counts.
    pub fn keep_all(clicks: usize) -> Answer {
        Answer { codes: vec![0; clicks], tags: Vec::new() }
    }
}

impl Answer {
    /// The answers of consecutive parts of the batch, `lens[i]` clicks
    /// each (summing to the batch's), tags renumbered within their part.
    pub fn split(self, lens: &[usize]) -> Vec<Answer> {
        let mut starts = Vec::with_capacity(lens.len());
        let mut parts: Vec<Answer> = Vec::with_capacity(lens.len());
        let mut codes = self.codes.into_iter();
        let mut start = 0;
        for &len in lens {
            starts.push(start);
            parts.push(Answer { codes: codes.by_ref().take(len).collect(), tags: Vec::new() });
            start += len;
        }
        for mut tag in self.tags {
            // The last part starting at or before the tag's click.
            let part = starts.partition_point(|&s| s <= tag.click as usize) - 1;
            tag.click -= starts[part] as u32;
            parts[part].tags.push(tag);
        }
        parts
    }
}

/// How an answer broke the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    #[error("{codes} verdicts for {clicks} clicks")]
    Codes { codes: usize, clicks: usize },
    #[error("{tags} tags for {clicks} clicks (at most {max} per click)")]
    TooManyTags { tags: usize, clicks: usize, max: usize },
    #[error("{strings} {what}s for {tags} tags")]
    Strings { what: &'static str, strings: usize, tags: usize },
    #[error("{what} offsets out of order or past the arena")]
    Offsets { what: &'static str },
    #[error("a {what} of {len} bytes (at most {max})")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("a {what} is not UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("a tag names click {click} of a {clicks}-click batch")]
    NoSuchClick { click: u32, clicks: usize },
    #[error("click {click} is tagged {key:?} twice")]
    TaggedTwice { click: u32, key: String },
    #[error("click {click} has code {RESERVED_CODE}, which the contract reserves (codes are 0-65534)")]
    ReservedCode { click: usize },
}

/// Checks an answer for a batch of `clicks` clicks, allowed
/// `tags_per_click` tags per click on average.
pub fn check(v: Verdicts, clicks: usize, tags_per_click: usize) -> Result<Answer, BadAnswer> {
    if v.codes.len() != clicks {
        return Err(BadAnswer::Codes { codes: v.codes.len(), clicks });
    }
    if let Some(click) = v.codes.iter().position(|&c| c == RESERVED_CODE) {
        return Err(BadAnswer::ReservedCode { click });
    }
    let n = v.tag_click.len();
    let max_tags = tags_per_click.min(MAX_TAGS_PER_CLICK);
    if n > clicks * max_tags {
        return Err(BadAnswer::TooManyTags { tags: n, clicks, max: max_tags });
    }
    let keys = split(&v.tag_keys, n, MAX_TAG_KEY_BYTES, "tag key")?;
    let values = split(&v.tag_values, n, MAX_TAG_VALUE_BYTES, "tag value")?;
    // A click counted twice under one dimension would count more clicks
    // than there are: one value per (click, key).
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    for ((&click, key), value) in v.tag_click.iter().zip(keys).zip(values) {
        if click as usize >= clicks {
            return Err(BadAnswer::NoSuchClick { click, clicks });
        }
        if !seen.insert((click, key)) {
            return Err(BadAnswer::TaggedTwice { click, key: key.to_owned() });
        }
        tags.push(Tag { click, key: key.to_owned(), value: value.to_owned() });
    }
    Ok(Answer { codes: v.codes, tags })
}

/// The `n` strings of an arena, each at most `max` bytes of UTF-8.
fn split<'a>(s: &'a Strings, n: usize, max: usize, what: &'static str) -> Result<Vec<&'a str>, BadAnswer> {
    if s.ends.len() != n {
        return Err(BadAnswer::Strings { what, strings: s.ends.len(), tags: n });
    }
    let mut out = Vec::with_capacity(n);
    let mut start = 0usize;
    for &end in &s.ends {
        let end = end as usize;
        if end < start || end > s.bytes.len() {
            return Err(BadAnswer::Offsets { what });
        }
        if end - start > max {
            return Err(BadAnswer::TooLong { what, len: end - start, max });
        }
        out.push(std::str::from_utf8(&s.bytes[start..end]).map_err(|_| BadAnswer::NotUtf8 { what })?);
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Strings {
        let mut s = Strings { bytes: Vec::new(), ends: Vec::new() };
        for i in items {
            s.bytes.extend_from_slice(i.as_bytes());
            s.ends.push(s.bytes.len() as u32);
        }
        s
    }

    fn verdicts(codes: Vec<u16>, tags: &[(u32, &str, &str)]) -> Verdicts {
        Verdicts {
            codes,
            tag_click: tags.iter().map(|t| t.0).collect(),
            tag_keys: strings(&tags.iter().map(|t| t.1).collect::<Vec<_>>()),
            tag_values: strings(&tags.iter().map(|t| t.2).collect::<Vec<_>>()),
        }
    }

    #[test]
    fn accepts_a_well_formed_answer() {
        let a = check(verdicts(vec![0, 3], &[(0, "country", "DE"), (1, "device", "mobile")]), 2, MAX_TAGS_PER_CLICK).unwrap();
        assert_eq!(a.codes, vec![0, 3]);
        assert_eq!(a.tags[1], Tag { click: 1, key: "device".into(), value: "mobile".into() });
    }

    #[test]
    fn refuses_answers_of_the_wrong_shape_or_size() {
        let long = "x".repeat(MAX_TAG_VALUE_BYTES + 1);
        let many: Vec<(u32, &str, &str)> = (0..9).map(|_| (0, "k", "v")).collect();
        let cases = [
            (verdicts(vec![0; 3], &[]), BadAnswer::Codes { codes: 3, clicks: 2 }, "3 verdicts for 2 clicks"),
            (verdicts(vec![0; 2], &[(2, "k", "v")]), BadAnswer::NoSuchClick { click: 2, clicks: 2 }, "names click 2"),
            (verdicts(vec![0; 2], &[(0, "k", &long)]), BadAnswer::TooLong { what: "tag value", len: 257, max: 256 }, "tag value of 257 bytes"),
            (verdicts(vec![0; 2], &many), BadAnswer::TooManyTags { tags: 9, clicks: 2, max: 4 }, "9 tags for 2 clicks"),
            (
                verdicts(vec![0; 2], &[(1, "country", "DE"), (0, "country", "DE"), (1, "country", "FR")]),
                BadAnswer::TaggedTwice { click: 1, key: "country".into() },
                "click 1 is tagged \"country\" twice",
            ),
            (verdicts(vec![0, RESERVED_CODE], &[]), BadAnswer::ReservedCode { click: 1 }, "click 1 has code 65535, which the contract reserves"),
        ];
        for (v, kind, want) in cases {
            let err = check(v, 2, MAX_TAGS_PER_CLICK).unwrap_err();
            assert_eq!(err, kind);
            assert!(err.to_string().contains(want), "{err}");
        }
        let mut v = verdicts(vec![0; 2], &[(0, "k", "v")]);
        v.tag_values.ends = vec![];
        assert!(check(v, 2, MAX_TAGS_PER_CLICK).unwrap_err().to_string().contains("0 tag values for 1 tags"));
    }

    #[test]
    fn split_answers_renumber_their_tags() {
        let tag = |click: u32, value: &str| Tag { click, key: "k".into(), value: value.into() };
        let whole = Answer { codes: vec![0, 1, 2, 3, 4, 5], tags: vec![tag(5, "f"), tag(0, "a"), tag(3, "d"), tag(2, "c")] };
        let parts = whole.split(&[2, 0, 1, 3]);
        assert_eq!(parts[0], Answer { codes: vec![0, 1], tags: vec![tag(0, "a")] });
        assert_eq!(parts[1], Answer::default());
        assert_eq!(parts[2], Answer { codes: vec![2], tags: vec![tag(0, "c")] });
        assert_eq!(parts[3], Answer { codes: vec![3, 4, 5], tags: vec![tag(2, "f"), tag(0, "d")] });
    }

    #[test]
    fn a_tenants_output_limit_is_at_most_the_contracts() {
        let three = || verdicts(vec![0; 2], &[(0, "a", "1"), (0, "b", "2"), (1, "a", "3")]);
        assert!(check(three(), 2, 1).unwrap_err().to_string().contains("3 tags for 2 clicks (at most 1 per click)"));
        assert_eq!(check(three(), 2, 2).unwrap().tags.len(), 3);
        assert!(check(verdicts(vec![0], &[(0, "a", "1")]), 1, 0).is_err(), "0: no enrichment at all");
        let many: Vec<(u32, &str, &str)> = ["a", "b", "c", "d", "e"].iter().map(|k| (0, *k, "v")).collect();
        assert!(check(verdicts(vec![0], &many), 1, 100).unwrap_err().to_string().contains("at most 4 per click"));
    }
}
