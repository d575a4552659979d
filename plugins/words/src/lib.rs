//! Whether a text holds any of a few words, in one pass over it: the
//! matcher of the example filters' rules (a bot's User-Agent words, a
//! device's), the same code in the plugins and in their native references.
//!
//! Design: a prefilter looks at 16 positions at a time and compares each
//! position's next three bytes with every word's first three (three 16-lane
//! byte compares per word: SSE2 on x86_64, simd128 on wasm32, a plain loop
//! elsewhere); only the positions that pass are checked against whole
//! words. Ignoring ASCII case ORs 0x20 into every byte first, which maps a
//! letter and its other case to one value (and merges a few non-letters,
//! which the whole-word check then rejects), so the prefilter never misses
//! a match. A text's last positions (fewer than 18 bytes left) go through a
//! zero-padded copy; a position past the text never passes the whole-word
//! check. A byte-at-a-time automaton costs a dependent table load per byte;
//! this costs about three instructions per byte and word, independent ones.
//!
//! Invariants: 1 to 8 words (each costs its compares on every block), each
//! 3 to 64 bytes.

/// Positions the prefilter looks at per step.
const BLOCK: usize = 16;
/// Bytes a step reads: its positions and the two after the last.
const WINDOW: usize = BLOCK + 2;
pub const MAX_WORDS: usize = 8;

/// Words, ready to be looked for.
#[derive(Debug, Clone)]
pub struct Words {
    /// Lower-cased when ignoring ASCII case.
    words: Vec<Vec<u8>>,
    /// Each word's first three bytes, OR-ed with `fold`, each repeated in
    /// all 16 lanes (splatted once here rather than on every block).
    prefixes: Vec<[[u8; BLOCK]; 3]>,
    /// 0x20 to ignore ASCII case, else 0.
    fold: u8,
}

impl Words {
    /// Panics outside the invariants (the words are the rules' constants).
    pub fn new(words: &[&str], ignore_ascii_case: bool) -> Words {
        assert!((1..=MAX_WORDS).contains(&words.len()), "1 to {MAX_WORDS} words");
        assert!(words.iter().all(|w| (3..=64).contains(&w.len())), "words of 3 to 64 bytes");
        let fold = if ignore_ascii_case { 0x20 } else { 0 };
        let words: Vec<Vec<u8>> = words.iter().map(|w| if ignore_ascii_case { w.to_ascii_lowercase().into_bytes() } else { w.as_bytes().to_vec() }).collect();
        let prefixes = words.iter().map(|w| [[w[0] | fold; BLOCK], [w[1] | fold; BLOCK], [w[2] | fold; BLOCK]]).collect();
        Words { words, prefixes, fold }
    }

    /// Whether `text` holds one of the words.
    pub fn in_text(&self, text: &[u8]) -> bool {
        #[cfg(target_arch = "wasm32")]
        return self.in_text_simd128(text);
        #[cfg(not(target_arch = "wasm32"))]
        return self.scan(text);
    }

    /// [`Words::in_text`] compiled with simd128 as a whole, so that the
    /// prefilter step inlines into the scan (a function with a target
    /// feature its caller lacks is never inlined: that was a call per 16
    /// bytes).
    #[cfg(target_arch = "wasm32")]
    #[target_feature(enable = "simd128")]
    fn in_text_simd128(&self, text: &[u8]) -> bool {
        self.scan(text)
    }

    #[inline(always)]
    fn scan(&self, text: &[u8]) -> bool {
        let mut at = 0;
        while at + WINDOW <= text.len() {
            let hits = self.block(&text[at..at + WINDOW]);
            if hits != 0 && self.confirm(text, at, hits) {
                return true;
            }
            at += BLOCK;
        }
        if at == text.len() {
            return false;
        }
        let mut padded = [0u8; BLOCK + WINDOW];
        padded[..text.len() - at].copy_from_slice(&text[at..]);
        (0..2).any(|b| {
            let hits = self.block(&padded[b * BLOCK..b * BLOCK + WINDOW]);
            hits != 0 && self.confirm(text, at + b * BLOCK, hits)
        })
    }

    /// Whether a word starts at one of the positions `at + i` for the bits
    /// `i` set in `hits`.
    fn confirm(&self, text: &[u8], at: usize, mut hits: u16) -> bool {
        while hits != 0 {
            let start = at + hits.trailing_zeros() as usize;
            hits &= hits - 1;
            let rest = text.get(start..).unwrap_or_default();
            let found = self
                .words
                .iter()
                .any(|w| rest.len() >= w.len() && if self.fold != 0 { rest[..w.len()].eq_ignore_ascii_case(w) } else { rest[..w.len()] == w[..] });
            if found {
                return true;
            }
        }
        false
    }

    /// Bit i set: `window[i..i + 3]` (folded) is some word's prefix.
    #[cfg(target_arch = "x86_64")]
    fn block(&self, window: &[u8]) -> u16 {
        use std::arch::x86_64::*;
        assert!(window.len() >= WINDOW);
        // SAFETY: SSE2 is part of x86_64, and the loads read window[0..18],
        // in bounds (asserted); loadu has no alignment requirement.
        unsafe {
            let fold = _mm_set1_epi8(self.fold as i8);
            let at = |i: usize| _mm_or_si128(_mm_loadu_si128(window.as_ptr().add(i).cast()), fold);
            let (b0, b1, b2) = (at(0), at(1), at(2));
            let mut hits = _mm_setzero_si128();
            for p in &self.prefixes {
                let eq = |b, lanes: &[u8; BLOCK]| _mm_cmpeq_epi8(b, _mm_loadu_si128(lanes.as_ptr().cast()));
                hits = _mm_or_si128(hits, _mm_and_si128(_mm_and_si128(eq(b0, &p[0]), eq(b1, &p[1])), eq(b2, &p[2])));
            }
            _mm_movemask_epi8(hits) as u16
        }
    }

    #[cfg(target_arch = "wasm32")]
    #[inline(always)]
    fn block(&self, window: &[u8]) -> u16 {
        block_simd128(&self.prefixes, self.fold, window)
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "wasm32")))]
    fn block(&self, window: &[u8]) -> u16 {
        self.block_scalar(window)
    }

    /// The prefilter step one position at a time: elsewhere, and the
    /// tests' check of the SIMD ones.
    #[cfg(any(test, not(any(target_arch = "x86_64", target_arch = "wasm32"))))]
    fn block_scalar(&self, window: &[u8]) -> u16 {
        let folded = |i: usize| window[i] | self.fold;
        let starts = |i: usize, p: &[[u8; BLOCK]; 3]| (0..3).all(|k| folded(i + k) == p[k][0]);
        (0..BLOCK).filter(|&i| self.prefixes.iter().any(|p| starts(i, p))).fold(0, |hits, i| hits | 1 << i)
    }
}

/// The wasm32 prefilter step. Every engine that runs our plugins (wasmtime)
/// has simd128 on by default; a plugin built with it will not validate on
/// one without.
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
#[inline]
fn block_simd128(prefixes: &[[[u8; BLOCK]; 3]], fold: u8, window: &[u8]) -> u16 {
    use std::arch::wasm32::*;
    assert!(window.len() >= WINDOW);
    let fold = u8x16_splat(fold);
    // SAFETY: each read covers window[i..i + 16] for i <= 2, in bounds
    // (asserted), or one 16-byte array; read_unaligned has no alignment
    // requirement.
    let (b0, b1, b2) = unsafe {
        let at = window.as_ptr();
        (
            v128_or(at.cast::<v128>().read_unaligned(), fold),
            v128_or(at.add(1).cast::<v128>().read_unaligned(), fold),
            v128_or(at.add(2).cast::<v128>().read_unaligned(), fold),
        )
    };
    let mut hits = u8x16_splat(0);
    for p in prefixes {
        let [l0, l1, l2] = p.map(|lanes| unsafe { lanes.as_ptr().cast::<v128>().read_unaligned() });
        hits = v128_or(hits, v128_and(v128_and(u8x16_eq(b0, l0), u8x16_eq(b1, l1)), u8x16_eq(b2, l2)));
    }
    u8x16_bitmask(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `in_text` means, one word and position at a time.
    fn naive(words: &[&str], ignore_case: bool, text: &[u8]) -> bool {
        words.iter().any(|w| text.windows(w.len()).any(|win| if ignore_case { win.eq_ignore_ascii_case(w.as_bytes()) } else { win == w.as_bytes() }))
    }

    #[test]
    fn finds_words_at_every_position_and_length_like_a_naive_scan() {
        let words = ["bot", "crawler", "curl/", "python-requests", "Mobile"];
        let alphabet: &[u8] = b"botcrawlerCURL/pyhn-equsMBILE \x00\xc3\x9f@`";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut found = [0; 2];
        for _ in 0..40_000 {
            let len = next(70);
            let mut text: Vec<u8> = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            // Plant a word (as written or in a random case, maybe cut by
            // the end) at a random place half the time.
            if next(2) == 0 && len > 0 {
                let w = words[next(words.len())].as_bytes();
                let (at, mixed) = (next(len), next(2) == 0);
                for (k, &c) in w.iter().enumerate().take(len - at) {
                    text[at + k] = if mixed && next(2) == 0 { c.to_ascii_uppercase() } else { c };
                }
            }
            for ignore_case in [false, true] {
                let want = naive(&words, ignore_case, &text);
                found[usize::from(ignore_case)] += usize::from(want);
                assert_eq!(Words::new(&words, ignore_case).in_text(&text), want, "{:?} ignore case {ignore_case}", String::from_utf8_lossy(&text));
            }
        }
        assert!(found.iter().all(|&f| (2_000..36_000).contains(&f)), "{found:?} of 40000 texts hold a word");
    }

    #[test]
    fn the_simd_prefilter_step_agrees_with_the_scalar_one() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for ignore_case in [false, true] {
            let words = Words::new(&["bot", "Cra", "sPi"], ignore_case);
            for _ in 0..20_000 {
                // Bytes around the prefixes' letters in both cases, so that
                // many windows hold hits.
                let window: Vec<u8> = (0..WINDOW).map(|_| b"botBOTcraCRAspiSPI\x00 "[next() as usize % 20]).collect();
                assert_eq!(words.block(&window), words.block_scalar(&window), "{window:?}");
            }
        }
    }

    #[test]
    fn edges_of_blocks_and_of_the_text() {
        let words = Words::new(&["spider", "bot"], true);
        for len in 0..60usize {
            for at in 0..=len.saturating_sub(3) {
                let mut text = vec![b'x'; len];
                if at + 3 <= len {
                    text[at..at + 3].copy_from_slice(b"BoT");
                }
                assert_eq!(words.in_text(&text), at + 3 <= len, "len {len} at {at}");
                // A word cut by the end of the text is no match.
                if len >= 2 {
                    let mut cut = vec![b'x'; len];
                    cut[len - 2..].copy_from_slice(b"bo");
                    assert!(!words.in_text(&cut), "len {len}");
                }
            }
        }
    }
}
