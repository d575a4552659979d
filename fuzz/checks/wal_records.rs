// The WAL reader (`tally_edge::spool::wal::read_records`) over a segment
// that a crash tore, garbage overwrote, or garbage follows. Needs `input.rs`
// and `records.rs` included before it.

use tally_edge::ingest::record::{WalClick, WalRecord, WalTag};
use tally_edge::spool::wal::{encode_record, read_records};

fn wal_record(input: &mut Input, lsn: u64) -> WalRecord {
    WalRecord {
        lsn,
        tenant: input.text(),
        clicks: (0..input.byte() % 4).map(|_| WalClick { record: click_record(input), user_hash: (input.byte() & 1 == 1).then(|| input.num()) }).collect(),
        refused: (0..input.byte() % 3).map(|_| refused_record(input)).collect(),
        tags: (0..input.byte() % 3).map(|_| WalTag { click: input.num() as u32, dimension: input.text(), value: input.text() }).collect(),
        verdicts: (0..input.byte() % 3).map(|_| verdict_row(input)).collect(),
    }
}

pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let records: Vec<WalRecord> = (0..input.byte() % 4).map(|lsn| wal_record(&mut input, lsn as u64)).collect();
    let mut intact = Vec::new();
    let mut starts = Vec::new();
    for record in &records {
        starts.push(intact.len());
        encode_record(record, &mut intact);
    }
    let start_of = |i: usize| starts.get(i).copied().unwrap_or(intact.len());
    let mut segment = intact.clone();
    let mut read = Vec::new();
    match input.byte() % 3 {
        // Torn: the last write stopped anywhere. Exactly the whole records
        // before the cut are read; a cut inside one is torn, not damage.
        0 => {
            let cut = (input.num() % (intact.len() as u64 + 1)) as usize;
            segment.truncate(cut);
            let (good, problem) = read_records(&segment, &mut read);
            let whole = (1..=records.len()).take_while(|&i| start_of(i) <= cut).count();
            assert_eq!(read, records[..whole]);
            assert_eq!(good, start_of(whole));
            match problem {
                None => assert_eq!(cut, good),
                Some(reason) => assert!(reason.starts_with("torn"), "a cut at {cut} read as {reason:?}"),
            }
        }
        // Garbage over the bytes from `at` on: the records before it are
        // read; the checksum covers the payload, so the first changed record
        // is refused unless the garbage also rewrote its checksum field.
        1 if !intact.is_empty() => {
            let at = (input.num() % intact.len() as u64) as usize;
            let garbage = input.rest();
            let n = garbage.len().min(intact.len() - at);
            segment[at..at + n].copy_from_slice(&garbage[..n]);
            let Some(first) = (at..at + n).find(|&i| segment[i] != intact[i]) else { return };
            let (good, problem) = read_records(&segment, &mut read);
            let j = starts.iter().rposition(|&s| s <= first).expect("the first record starts at 0");
            assert!(read.len() >= j && read[..j] == records[..j], "an intact record before the damage was lost");
            let changed = |range: std::ops::Range<usize>| range.into_iter().any(|i| segment[i] != intact[i]);
            let start = start_of(j);
            if !changed(start + 4..start + 12) {
                assert_eq!((read.len(), good), (j, start), "a damaged record was read as valid");
                // With its length intact the record is whole, so damaged, never torn.
                if !changed(start..start + 4) {
                    assert!(!problem.expect("damage stops reading").starts_with("torn"));
                }
            }
        }
        // Garbage after the last record: every record is still read.
        _ => {
            segment.extend_from_slice(input.rest());
            let (good, _) = read_records(&segment, &mut read);
            assert!(read.len() >= records.len() && read[..records.len()] == records[..], "garbage after the records hid one");
            assert!(good >= intact.len());
        }
    }
    // In every case: the readable prefix is what was read, and a clean end means all of it.
    let (good, problem) = read_records(&segment, &mut Vec::new());
    assert!(good <= segment.len());
    assert_eq!(problem.is_none(), good == segment.len());
}
