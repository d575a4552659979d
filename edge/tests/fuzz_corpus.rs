//! Replays the committed fuzz corpus (`fuzz/corpus/`) through the checks the
//! fuzz targets run (`fuzz/checks/`, included verbatim), so CI keeps every
//! fuzzed property and every past finding without building a fuzzer.

use std::path::{Path, PathBuf};

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

include!("../../fuzz/checks/replay.rs");

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn ingest_body() {
    replay(&corpus(), "ingest_body", ingest_body::check);
}

#[test]
fn signed_link() {
    replay(&corpus(), "signed_link", signed_link::check);
}

#[test]
fn wal_records() {
    replay(&corpus(), "wal_records", wal_records::check);
}
