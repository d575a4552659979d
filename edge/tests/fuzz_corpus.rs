//! Replays the committed fuzz corpus (`fuzz/corpus/`) through the checks the
//! fuzz targets run (`fuzz/checks/`, included verbatim), so CI keeps every
//! fuzzed property and every past finding without building a fuzzer.

use std::path::Path;

mod ingest_body {
    include!("../../fuzz/checks/ingest_body.rs");
}

mod signed_link {
    include!("../../fuzz/checks/input.rs");
    include!("../../fuzz/checks/signed_link.rs");
}

mod wal_records {
    include!("../../fuzz/checks/input.rs");
    include!("../../fuzz/checks/records.rs");
    include!("../../fuzz/checks/wal_records.rs");
}

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus", dir.display());
    for path in files {
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{} fails its check", path.display());
        }
    }
}

#[test]
fn ingest_body() {
    replay("ingest_body", ingest_body::check);
}

#[test]
fn signed_link() {
    replay("signed_link", signed_link::check);
}

#[test]
fn wal_records() {
    replay("wal_records", wal_records::check);
}
