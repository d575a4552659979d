//! Payload buffers of answered batches, kept for the next frames to be read
//! into. A fresh buffer for a large batch costs a page fault (and the
//! kernel's zeroing) for every 4 KiB page the read touches: with ship
//! intervals of a second, batches are megabytes, and those faults were
//! about a tenth of the core's CPU. A reused buffer's pages are resident.
//!
//! Bounded: at most [`SPARE_BUFFERS`] buffers and [`SPARE_BYTES`] of
//! capacity are kept (larger buffers are freed), on top of the receiver's
//! in-flight budget. A buffer is cleared before reuse; whatever it held is
//! overwritten by the next frame before anyone reads it.

use std::sync::Mutex;

use tally_model::batch::frame::AlignedVec;

pub const SPARE_BUFFERS: usize = 4;
pub const SPARE_BYTES: usize = 64 << 20;

static SPARE: Mutex<Vec<AlignedVec<16>>> = Mutex::new(Vec::new());

/// An empty buffer with room for `len` bytes: the smallest kept one that
/// is large enough (a small frame must not take the buffer a large batch
/// needs next), else a new one.
pub fn buffer(len: usize) -> AlignedVec<16> {
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let fits = spare.iter().enumerate().filter(|(_, b)| b.capacity() >= len).min_by_key(|(_, b)| b.capacity()).map(|(at, _)| at);
    match fits {
        Some(at) => spare.swap_remove(at),
        None => AlignedVec::with_capacity(len),
    }
}

/// Keeps `payload` for a later frame, within the bounds.
pub fn recycle(mut payload: AlignedVec<16>) {
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let kept: usize = spare.iter().map(AlignedVec::capacity).sum();
    if spare.len() < SPARE_BUFFERS && kept + payload.capacity() <= SPARE_BYTES {
        payload.clear();
        spare.push(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_buffer_comes_back_empty_and_the_bounds_hold() {
        let mut first = buffer(1000);
        first.extend_from_slice(&[7; 1000]);
        let capacity = first.capacity();
        recycle(first);
        let again = buffer(500);
        assert!(again.is_empty());
        assert!(again.capacity() >= 500);
        recycle(again);
        // Too large to keep: freed, the kept ones stay within the bounds.
        recycle(AlignedVec::with_capacity(SPARE_BYTES + 1));
        for _ in 0..SPARE_BUFFERS + 2 {
            recycle(AlignedVec::with_capacity(capacity));
        }
        let spare = SPARE.lock().unwrap();
        assert!(spare.len() <= SPARE_BUFFERS);
        assert!(spare.iter().map(AlignedVec::capacity).sum::<usize>() <= SPARE_BYTES);
    }
}
