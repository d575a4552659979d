//! A deliberately hostile filter, for the containment tests. What it does
//! depends on the first click's ad id: 1 loops forever, 2 allocates until
//! it dies, 3 traps, 4 answers ten verdicts per click; anything else keeps
//! every click (so it behaves until told otherwise). It implements the raw
//! binding instead of the SDK's `Filter`, which would not let it lie about
//! the number of verdicts.

use tally_filter_sdk::bindings::{export, Guest};
use tally_filter_sdk::ClickBatch;

struct Hostile;

impl Guest for Hostile {
    fn filter(batch: ClickBatch) -> Vec<u16> {
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
            Some(4) => vec![0; n * 10],
            _ => vec![0; n],
        }
    }
}

export!(Hostile with_types_in tally_filter_sdk::bindings);
