//! A filter's answer, checked against the contract's shape and size limits
//! before the edge believes a word of it.
//!
//! A checked answer's tags stay arenas ([`Tags`]): the answer's own lifted
//! buffers, cut to the checked strings, so a tag costs no allocation until
//! the edge copies the declared ones into its record.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag<'a> {
    pub click: u32,
    pub key: &'a str,
    pub value: &'a str,
}

/// An answer's tags, in the order given: one array of clicks and one arena
/// per string column (the answer's own lifted buffers once checked, so a
/// tag costs no allocation).
///
/// Invariants (the fields are private, and only [`check`] and
/// [`Tags::push`] make them): the three columns have one entry per tag;
/// each arena's ends are in order, cut at character boundaries, and the
/// last is the arena's length, so equal tags are equal arenas.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Tags {
    clicks: Vec<u32>,
    keys: Text,
    values: Text,
}

/// Strings as one text and the end of each.
#[derive(Clone, PartialEq, Eq, Default)]
struct Text {
    text: String,
    ends: Vec<u32>,
}

impl Text {
    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len() as u32);
    }
}

impl Tags {
    pub fn len(&self) -> usize {
        self.clicks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clicks.is_empty()
    }

    /// Tag `j`, in the order given.
    pub fn get(&self, j: usize) -> Tag<'_> {
        Tag { click: self.clicks[j], key: self.keys.get(j), value: self.values.get(j) }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Tag<'_>> + '_ {
        (0..self.len()).map(|j| self.get(j))
    }

    pub fn push(&mut self, tag: Tag<'_>) {
        self.clicks.push(tag.click);
        self.keys.push(tag.key);
        self.values.push(tag.value);
    }
}

impl<'a> FromIterator<Tag<'a>> for Tags {
    fn from_iter<I: IntoIterator<Item = Tag<'a>>>(iter: I) -> Tags {
        let mut tags = Tags::default();
        iter.into_iter().for_each(|t| tags.push(t));
        tags
    }
}

impl std::fmt::Debug for Tags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A checked answer: one code per click, tags naming clicks of the batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub codes: Vec<u16>,
    pub tags: Tags,
}

impl Answer {
    /// Everything kept, nothing tagged: what fail-open counts.
    pub fn keep_all(clicks: usize) -> Answer {
        Answer { codes: vec![0; clicks], tags: Tags::default() }
    }
}

impl Answer {
    /// The answers of consecutive parts of the batch, `lens[i]` clicks
    /// each (summing to the batch's), tags renumbered within their part.
    pub fn split(self, lens: &[usize]) -> Vec<Answer> {
        if lens.len() == 1 {
            return vec![self];
        }
        let mut starts = Vec::with_capacity(lens.len());
        let mut parts: Vec<Answer> = Vec::with_capacity(lens.len());
        let mut codes = self.codes.into_iter();
        let mut start = 0;
        for &len in lens {
            starts.push(start);
            parts.push(Answer { codes: codes.by_ref().take(len).collect(), tags: Tags::default() });
            start += len;
        }
        for tag in self.tags.iter() {
            // The last part starting at or before the tag's click.
            let part = starts.partition_point(|&s| s <= tag.click as usize) - 1;
            parts[part].tags.push(Tag { click: tag.click - starts[part] as u32, ..tag });
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

/// Tags of one click compared key by key before the check hashes instead
/// (so a plugin tagging one click thousands of times costs linear time).
const SCANNED_RUN: usize = 8;

/// Checks an answer for a batch of `clicks` clicks, allowed
/// `tags_per_click` tags per click on average.
///
/// Faults are found in a fixed order (the codes, the tag count, every key,
/// every value, then tag by tag), so a bad answer always fails the same way.
/// A good answer becomes the [`Answer`] without copying or allocating per
/// tag: its lifted buffers are kept as the tags' arenas (cut to the checked
/// strings), each checked as UTF-8 in one pass. A repeated key is looked
/// for among the few earlier tags of the same click when the tags come in
/// click order, as they do from the SDK, not hashed ([`SCANNED_RUN`]).
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
    let keys = text(v.tag_keys, n, MAX_TAG_KEY_BYTES, "tag key")?;
    let values = text(v.tag_values, n, MAX_TAG_VALUE_BYTES, "tag value")?;
    // A click counted twice under one dimension would count more clicks
    // than there are: one value per (click, key).
    let mut run_start = 0; // the first tag of the current click's run
    let mut seen: Option<std::collections::HashSet<(u32, &str)>> = None; // once the tags leave click order
    for (i, &click) in v.tag_click.iter().enumerate() {
        if click as usize >= clicks {
            return Err(BadAnswer::NoSuchClick { click, clicks });
        }
        let key = keys.get(i);
        if seen.is_none() {
            if i > 0 && v.tag_click[i - 1] != click {
                run_start = i;
            }
            if (i > 0 && v.tag_click[i - 1] > click) || i - run_start > SCANNED_RUN {
                seen = Some(v.tag_click[..i].iter().enumerate().map(|(k, &c)| (c, keys.get(k))).collect());
            }
        }
        let twice = match &mut seen {
            Some(seen) => !seen.insert((click, key)),
            None => (run_start..i).any(|k| keys.get(k) == key),
        };
        if twice {
            return Err(BadAnswer::TaggedTwice { click, key: key.to_owned() });
        }
    }
    Ok(Answer { codes: v.codes, tags: Tags { clicks: v.tag_click, keys, values } })
}

/// The arena as `n` checked strings, each at most `max` bytes of UTF-8;
/// its bytes past the last one dropped (and their memory given back, so a
/// plugin cannot make the edge hold more than the limits allow).
fn text(s: Strings, n: usize, max: usize, what: &'static str) -> Result<Text, BadAnswer> {
    if s.ends.len() != n {
        return Err(BadAnswer::Strings { what, strings: s.ends.len(), tags: n });
    }
    let mut start = 0usize;
    for (i, &end) in s.ends.iter().enumerate() {
        let end = end as usize;
        let fault = if end < start || end > s.bytes.len() {
            BadAnswer::Offsets { what }
        } else if end - start > max {
            BadAnswer::TooLong { what, len: end - start, max }
        } else {
            start = end;
            continue;
        };
        // An earlier string that is not UTF-8 is the first fault.
        return Err(match utf8(&s.bytes[..start], &s.ends[..i]) {
            Some(_) => fault,
            None => BadAnswer::NotUtf8 { what },
        });
    }
    let Strings { mut bytes, ends } = s;
    bytes.truncate(start);
    if bytes.capacity() > bytes.len() {
        bytes.shrink_to_fit();
    }
    let text = String::from_utf8(bytes).map_err(|_| BadAnswer::NotUtf8 { what })?;
    if !ends.iter().all(|&e| text.is_char_boundary(e as usize)) {
        return Err(BadAnswer::NotUtf8 { what });
    }
    Ok(Text { text, ends })
}

/// `bytes` as one string if the strings it is cut into at `ends` (in order,
/// covering it) are each UTF-8: the whole is, and no cut splits a character.
fn utf8<'a>(bytes: &'a [u8], ends: &[u32]) -> Option<&'a str> {
    let text = std::str::from_utf8(bytes).ok()?;
    ends.iter().all(|&e| text.is_char_boundary(e as usize)).then_some(text)
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
        assert_eq!(a.tags.get(1), Tag { click: 1, key: "device", value: "mobile" });
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

    /// The check as first written (a `Vec` of strings per arena, one hash
    /// per tag): what the one above must answer, fault for fault.
    fn plain_check(v: Verdicts, clicks: usize, tags_per_click: usize) -> Result<Answer, BadAnswer> {
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
        let split = |s: &Strings, max: usize, what: &'static str| -> Result<Vec<String>, BadAnswer> {
            if s.ends.len() != n {
                return Err(BadAnswer::Strings { what, strings: s.ends.len(), tags: n });
            }
            let mut out = Vec::new();
            let mut start = 0usize;
            for &end in &s.ends {
                let end = end as usize;
                if end < start || end > s.bytes.len() {
                    return Err(BadAnswer::Offsets { what });
                }
                if end - start > max {
                    return Err(BadAnswer::TooLong { what, len: end - start, max });
                }
                out.push(std::str::from_utf8(&s.bytes[start..end]).map_err(|_| BadAnswer::NotUtf8 { what })?.to_owned());
                start = end;
            }
            Ok(out)
        };
        let keys = split(&v.tag_keys, MAX_TAG_KEY_BYTES, "tag key")?;
        let values = split(&v.tag_values, MAX_TAG_VALUE_BYTES, "tag value")?;
        let mut seen = std::collections::HashSet::new();
        let mut tags = Tags::default();
        for ((&click, key), value) in v.tag_click.iter().zip(keys).zip(values) {
            if click as usize >= clicks {
                return Err(BadAnswer::NoSuchClick { click, clicks });
            }
            if !seen.insert((click, key.clone())) {
                return Err(BadAnswer::TaggedTwice { click, key });
            }
            tags.push(Tag { click, key: &key, value: &value });
        }
        Ok(Answer { codes: v.codes, tags })
    }

    /// Random answers, mostly well-formed, with every fault mixed in: tags
    /// in and out of click order, long runs on one click, repeated keys,
    /// multi-byte and broken UTF-8 (also cut mid-character), bad offsets,
    /// strings over the limits.
    #[test]
    fn refuses_and_accepts_exactly_as_the_plain_check() {
        let mut rng = fastrand::Rng::with_seed(14);
        let pieces: [&[u8]; 8] = [b"country", b"device", b"DE", "\u{e9}t\u{e9}".as_bytes(), b"\xff", b"\xe2\x82", b"", b"k"];
        let mut verdicts_of_each_kind = std::collections::HashMap::<String, usize>::new();
        for _ in 0..20_000 {
            let clicks = rng.usize(1..6);
            let n = rng.usize(0..clicks * 5);
            let sorted = rng.u8(..4) != 0;
            let mut tag_click: Vec<u32> = (0..n)
                .map(|_| {
                    let past = u32::from(rng.u8(..30) == 0);
                    rng.u32(0..clicks as u32 + past)
                })
                .collect();
            if sorted {
                tag_click.sort();
            }
            let arena = |rng: &mut fastrand::Rng, max: usize| {
                let mut s = Strings { bytes: Vec::new(), ends: Vec::new() };
                for _ in 0..n {
                    let kinds = if rng.u8(..10) == 0 { 8 } else { 4 };
                    let piece = pieces[rng.usize(..kinds)];
                    s.bytes.extend_from_slice(piece);
                    if rng.u16(..200) == 0 {
                        s.bytes.extend(std::iter::repeat(b'x').take(max + 1 - piece.len().min(max)));
                    }
                    s.ends.push(s.bytes.len() as u32);
                }
                match rng.u8(..60) {
                    0 if n > 0 => s.ends[rng.usize(..n)] += rng.u32(1..4), // mid-character, decreasing or past the arena
                    1 => {
                        s.ends.pop();
                    }
                    2 => s.bytes.truncate(s.bytes.len().saturating_sub(1)),
                    _ => {}
                }
                s
            };
            let v = Verdicts {
                codes: (0..clicks + usize::from(rng.u8(..50) == 0)).map(|_| if rng.u8(..80) == 0 { RESERVED_CODE } else { rng.u16(..3) }).collect(),
                tag_click,
                tag_keys: arena(&mut rng, MAX_TAG_KEY_BYTES),
                tag_values: arena(&mut rng, MAX_TAG_VALUE_BYTES),
            };
            let tags_per_click = rng.usize(0..6);
            let want = plain_check(v.clone(), clicks, tags_per_click);
            assert_eq!(check(v.clone(), clicks, tags_per_click), want, "{v:?}");
            let kind = match &want {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:?}").split([' ', '{']).next().unwrap().to_string(),
            };
            *verdicts_of_each_kind.entry(kind).or_default() += 1;
        }
        for kind in ["ok", "Codes", "ReservedCode", "TooManyTags", "Strings", "Offsets", "TooLong", "NotUtf8", "NoSuchClick", "TaggedTwice"] {
            assert!(verdicts_of_each_kind.get(kind).copied().unwrap_or(0) >= 20, "{kind}: {verdicts_of_each_kind:?}");
        }
    }

    #[test]
    fn one_click_tagged_thousands_of_times_is_checked_in_linear_time() {
        let keys: Vec<String> = (0..4000).map(|k| format!("k{k}")).collect();
        let mut tags: Vec<(u32, &str, &str)> = keys.iter().map(|k| (0, k.as_str(), "v")).collect();
        assert_eq!(check(verdicts(vec![0; 1000], &tags), 1000, MAX_TAGS_PER_CLICK).unwrap().tags.len(), 4000);
        tags.push((0, "k3", "v"));
        tags.remove(0);
        assert_eq!(check(verdicts(vec![0; 1000], &tags), 1000, MAX_TAGS_PER_CLICK).unwrap_err(), BadAnswer::TaggedTwice { click: 0, key: "k3".into() });
    }

    #[test]
    fn split_answers_renumber_their_tags() {
        let tag = |click: u32, value: &'static str| Tag { click, key: "k", value };
        let whole = Answer { codes: vec![0, 1, 2, 3, 4, 5], tags: [tag(5, "f"), tag(0, "a"), tag(3, "d"), tag(2, "c")].into_iter().collect() };
        let parts = whole.split(&[2, 0, 1, 3]);
        assert_eq!(parts[0], Answer { codes: vec![0, 1], tags: [tag(0, "a")].into_iter().collect() });
        assert_eq!(parts[1], Answer::default());
        assert_eq!(parts[2], Answer { codes: vec![2], tags: [tag(0, "c")].into_iter().collect() });
        assert_eq!(parts[3], Answer { codes: vec![3, 4, 5], tags: [tag(2, "f"), tag(0, "d")].into_iter().collect() });
    }

    /// A checked answer keeps the plugin's buffers as its arenas, but not
    /// what lies past the last string: a plugin padding its answer with
    /// megabytes after the tags does not make the edge hold them.
    #[test]
    fn checked_tags_keep_only_their_strings() {
        let mut v = verdicts(vec![0; 2], &[(0, "country", "DE"), (1, "device", "mobile")]);
        v.tag_values.bytes.extend(std::iter::repeat(b'x').take(1 << 20));
        v.tag_keys.bytes.push(0xff); // not UTF-8, but past the last key: not a key
        let a = check(v, 2, MAX_TAGS_PER_CLICK).unwrap();
        assert!(a.tags.values.text.capacity() < 1024 && a.tags.keys.text.len() == "countrydevice".len());
        let pushed: Tags = [Tag { click: 0, key: "country", value: "DE" }, Tag { click: 1, key: "device", value: "mobile" }].into_iter().collect();
        assert_eq!(a.tags, pushed, "equal tags are equal arenas");
        assert_eq!(format!("{:?}", a.tags), format!("{:?}", pushed.iter().collect::<Vec<_>>()));
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
