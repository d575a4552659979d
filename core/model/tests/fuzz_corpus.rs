//! Replays the committed fuzz corpus (`fuzz/corpus/`) through the checks the
//! fuzz targets run (`fuzz/checks/`, included verbatim), so CI keeps every
//! fuzzed property and every past finding without building a fuzzer.

use std::path::{Path, PathBuf};

mod batch_frame {
    include!("../../../fuzz/checks/input.rs");
    include!("../../../fuzz/checks/records.rs");
    include!("../../../fuzz/checks/batch_frame.rs");
}

include!("../../../fuzz/checks/replay.rs");

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

#[test]
fn batch_frame() {
    replay(&corpus(), "batch_frame", batch_frame::check);
}
