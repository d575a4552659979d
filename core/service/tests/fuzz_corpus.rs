//! Replays the committed fuzz corpus (`fuzz/corpus/`) through the checks the
//! fuzz targets run (`fuzz/checks/`, included verbatim), so CI keeps every
//! fuzzed property and every past finding without building a fuzzer.

use std::path::{Path, PathBuf};

mod query_params {
    include!("../../../fuzz/checks/input.rs");
    include!("../../../fuzz/checks/query_params.rs");
}

include!("../../../fuzz/checks/replay.rs");

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

#[test]
fn query_params() {
    replay(&corpus(), "query_params", query_params::check);
}
