//! A deliberately hostile filter, for the containment tests. What it does
//! depends on the first click's ad id: 1 loops forever, 2 allocates until
//! it dies, 3 traps, 4 answers ten codes per click, 5 answers the right
//! codes buried under 100 tags of 10 KB per click; anything else keeps
//! every click (so it behaves until told otherwise). It implements the raw
//! binding instead of the SDK's `Filter`, which would not let it lie about
//! the shape of its answer.

use tally_filter_sdk::bindings::tally::filter::types::Verdicts;
use tally_filter_sdk::bindings::{export, Guest};
use tally_filter_sdk::{ClickBatch, Strings};

struct Hostile;

impl Guest for Hostile {
    fn filter(batch: ClickBatch) -> Verdicts {
        let n = batch.ad_id.len();
        match batch.ad_id.first() {
            Some(1) => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Some(2) => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some(3) => panic!("hostile filter traps on purpose"),
            Some(4) => keep(n * 10),
            Some(5) => {
                const PER_CLICK: usize = 100;
                let tags = n * PER_CLICK;
                Verdicts {
                    tag_click: (0..tags).map(|t| (t / PER_CLICK) as u32).collect(),
                    tag_keys: repeated(b"country", tags),
                    tag_values: repeated(&[b'x'; 10 << 10], tags),
                    ..keep(n)
                }
            }
            _ => keep(n),
        }
    }
}

/// `codes` codes that keep, no tags.
fn keep(codes: usize) -> Verdicts {
    Verdicts { codes: vec![0; codes], tag_click: Vec::new(), tag_keys: repeated(b"", 0), tag_values: repeated(b"", 0) }
}

/// `count` copies of `s` as a string arena.
fn repeated(s: &[u8], count: usize) -> Strings {
    Strings { bytes: s.repeat(count), ends: (1..=count).map(|k| (k * s.len()) as u32).collect() }
}

export!(Hostile with_types_in tally_filter_sdk::bindings);
