// Included by the workspace's `tests/fuzz_corpus.rs` files (not by the fuzz
// targets): runs every committed corpus file of `target` through `check`.
// `corpus` is `fuzz/corpus/` as seen from the including crate.

fn replay(corpus: &std::path::Path, target: &str, check: fn(&[u8])) {
    let dir = corpus.join(target);
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
