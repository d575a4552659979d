// Shared by the fuzz targets (`fuzz_targets/`) and the workspace tests that
// replay the committed corpus (`*/tests/fuzz_corpus.rs`), by `include!`, so
// CI checks exactly the properties that were fuzzed.

/// Fuzz input read as a stream of choices; past its end every read is zero,
/// so any input is a whole case.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, rest)| (*b, rest));
        self.0 = rest;
        b
    }

    /// Small values from one byte, up to 64 bits from more, so mutations
    /// reach both the common cases and the extremes.
    fn num(&mut self) -> u64 {
        match self.byte() {
            b @ 0..=0xef => b as u64,
            b => (0..=(b & 7)).fold(0, |n, i| n | (self.byte() as u64) << (8 * i)),
        }
    }

    fn text(&mut self) -> String {
        let n = (self.byte() % 32) as usize;
        let (s, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        String::from_utf8_lossy(s).into_owned()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}
