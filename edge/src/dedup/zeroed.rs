//! Zeroed arrays for the dedup table's index, on transparent huge pages
//! where the kernel gives them.
//!
//! A table of millions of keys is read at random: with 4 KiB pages nearly
//! every probe also misses the TLB, and its page walk misses the cache in
//! turn. An array of [`HUGE_PAGE`] or more is its own anonymous mapping,
//! aligned to 2 MiB and advised `MADV_HUGEPAGE`, so each TLB entry covers
//! 512 times as much. Only a hint: where the kernel has no huge page (or
//! THP is off) the mapping is ordinary pages, zeroed on first touch as
//! before; nothing depends on getting them. Smaller arrays, and every
//! array off Linux, are a plain `Vec`.
//!
//! # Off the request path
//! A fresh mapping costs its page faults when first touched: zeroing 2 MiB
//! per huge page, and where free memory is fragmented (a page cache full of
//! ClickHouse parts and WAL segments) the kernel compacts memory inside the
//! fault before it can hand out a huge page, for as long as that takes
//! (`defrag` = `madvise`, the default, does that for advised mappings). A
//! new index's slots are written at random from the first insert on, so
//! every one of those faults would land inside admissions, hundreds in a
//! row. [`Pending`] makes an array in a thread of its own and touches every
//! page there; unmapping a large array (hundreds of thousands of pages
//! back to the kernel) goes to a thread too ([`Zeroed::drop_off_path`]).
//! Only where the work happens changes: the array is the same.

use std::ops::{Deref, DerefMut};

/// The huge page size of x86_64 and aarch64 (4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Element types whose all-zero bytes are a valid value (a mapping starts
/// zeroed).
///
/// # Safety
/// Implement only for types where every zero bit pattern is a valid value.
pub unsafe trait ZeroValid: Copy {}

// SAFETY: integers and arrays of them are valid at zero.
unsafe impl ZeroValid for u64 {}

/// `len` zeroed `T`s; see the module docs.
pub struct Zeroed<T: ZeroValid> {
    store: Store<T>,
}

enum Store<T> {
    Heap(Vec<T>),
    #[cfg(target_os = "linux")]
    Mapped(mapped::Mapping<T>),
}

impl<T: ZeroValid> Zeroed<T> {
    pub fn new(len: usize) -> Zeroed<T> {
        let bytes = len * std::mem::size_of::<T>();
        #[cfg(target_os = "linux")]
        if bytes >= HUGE_PAGE {
            if let Some(m) = mapped::Mapping::new(len) {
                return Zeroed { store: Store::Mapped(m) };
            }
        }
        let _ = bytes;
        // SAFETY: `T: ZeroValid`, so zeroed memory holds valid `T`s.
        Zeroed { store: Store::Heap(vec![unsafe { std::mem::zeroed() }; len]) }
    }

    /// Starts making `len` zeroed `T`s: off the caller's thread when they
    /// are a mapping of their own (module docs), else right away.
    pub fn prepare(len: usize) -> Pending<T>
    where
        T: Send + 'static,
    {
        #[cfg(target_os = "linux")]
        if len * std::mem::size_of::<T>() >= HUGE_PAGE {
            let made = std::thread::Builder::new().name("dedup-slots".into()).spawn(move || {
                let mut array = Zeroed::new(len);
                array.touch_every_page();
                array
            });
            // No thread to be had: the caller makes the array when it needs it.
            return Pending { len, state: made.map_or(Preparing::Later, Preparing::Thread) };
        }
        Pending { len, state: Preparing::Done(Zeroed::new(len)) }
    }

    /// Drops the array, in a thread of its own when it is a mapping (module
    /// docs); if no thread can be had, here.
    pub fn drop_off_path(self)
    where
        T: Send + 'static,
    {
        #[cfg(target_os = "linux")]
        if let Store::Mapped(m) = self.store {
            if let Err(e) = std::thread::Builder::new().name("dedup-unmap".into()).spawn(move || drop(m)) {
                tracing::debug!(error = %e, "no thread to unmap old dedup slots: unmapping inline");
            }
        }
    }

    /// Writes a zero to every base page, so the kernel maps them all now.
    #[cfg(target_os = "linux")]
    fn touch_every_page(&mut self) {
        let step = (4096 / std::mem::size_of::<T>().max(1)).max(1);
        let base = self.as_mut_ptr();
        for i in (0..self.len()).step_by(step) {
            // SAFETY: `i < len`; zero is a valid `T` and the value already
            // there (the mapping starts zeroed). Volatile so the write that
            // faults the page in is not optimized away as a no-op.
            unsafe { std::ptr::write_volatile(base.add(i), std::mem::zeroed()) };
        }
    }

    /// Bytes held: the whole mapping, or the vector's capacity.
    pub fn memory_bytes(&self) -> usize {
        match &self.store {
            Store::Heap(v) => v.capacity() * std::mem::size_of::<T>(),
            #[cfg(target_os = "linux")]
            Store::Mapped(m) => m.bytes(),
        }
    }
}

/// A [`Zeroed`] on its way ([`Zeroed::prepare`]).
pub struct Pending<T: ZeroValid> {
    len: usize,
    state: Preparing<T>,
}

enum Preparing<T: ZeroValid> {
    Done(Zeroed<T>),
    #[cfg(target_os = "linux")]
    Thread(std::thread::JoinHandle<Zeroed<T>>),
    #[cfg(target_os = "linux")]
    Later,
}

impl<T: ZeroValid> Pending<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The array: waits for its thread if it is still touching pages (it
    /// had a head start of many inserts), or makes it here if it could not.
    pub fn take(self) -> Zeroed<T> {
        match self.state {
            Preparing::Done(array) => array,
            #[cfg(target_os = "linux")]
            Preparing::Thread(thread) => {
                let waited = (!thread.is_finished()).then(std::time::Instant::now);
                let array = thread.join().unwrap_or_else(|_| Zeroed::new(self.len));
                if let Some(since) = waited {
                    // The head start was too short: this wait is a stall of admission.
                    tracing::warn!(
                        waited_ms = since.elapsed().as_millis() as u64,
                        bytes = array.memory_bytes(),
                        "a dedup index growth waited for its new slots to be mapped; if this repeats, the kernel is slow to give memory (see THP defrag)"
                    );
                }
                array
            }
            #[cfg(target_os = "linux")]
            Preparing::Later => Zeroed::new(self.len),
        }
    }

    /// Gives the array back without waiting: its thread (if still running)
    /// frees it when done.
    pub fn drop_off_path(self)
    where
        T: Send + 'static,
    {
        match self.state {
            Preparing::Done(array) => array.drop_off_path(),
            // A detached thread drops what it made, off this path.
            #[cfg(target_os = "linux")]
            Preparing::Thread(thread) => drop(thread),
            #[cfg(target_os = "linux")]
            Preparing::Later => {}
        }
    }

    /// Bytes it holds or is about to: counted as soon as it is asked for.
    pub fn memory_bytes(&self) -> usize {
        match &self.state {
            Preparing::Done(array) => array.memory_bytes(),
            #[cfg(target_os = "linux")]
            _ => self.len * std::mem::size_of::<T>(),
        }
    }
}

impl<T: ZeroValid> Deref for Zeroed<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.store {
            Store::Heap(v) => v,
            #[cfg(target_os = "linux")]
            Store::Mapped(m) => m.as_slice(),
        }
    }
}

impl<T: ZeroValid> DerefMut for Zeroed<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.store {
            Store::Heap(v) => v,
            #[cfg(target_os = "linux")]
            Store::Mapped(m) => m.as_mut_slice(),
        }
    }
}

impl<T: ZeroValid> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending[{}]", self.len)
    }
}

impl<T: ZeroValid + std::fmt::Debug> std::fmt::Debug for Zeroed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Zeroed[{}; {} bytes]", self.len(), self.memory_bytes())
    }
}

#[cfg(target_os = "linux")]
mod mapped {
    use std::marker::PhantomData;
    use std::ptr::NonNull;

    use super::{ZeroValid, HUGE_PAGE};

    /// An anonymous private mapping of `len` `T`s whose start is aligned
    /// to a huge page, unmapped on drop.
    pub struct Mapping<T> {
        start: NonNull<T>,
        len: usize,
        bytes: usize,
        _owns: PhantomData<T>,
    }

    // SAFETY: the mapping is owned memory like a `Vec<T>`'s.
    unsafe impl<T: Send> Send for Mapping<T> {}
    // SAFETY: shared access only reads, like `&[T]`.
    unsafe impl<T: Sync> Sync for Mapping<T> {}

    impl<T: ZeroValid> Mapping<T> {
        /// `None` if the kernel refuses the mapping (the caller falls back
        /// to the heap, which then reports the failure as usual).
        pub fn new(len: usize) -> Option<Mapping<T>> {
            // SAFETY: sysconf reads a constant of the system.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok().filter(|&p| p > 0 && HUGE_PAGE % p == 0)?;
            // Whole base pages: a last part short of a huge page stays on them.
            let bytes = (len * std::mem::size_of::<T>()).div_ceil(page) * page;
            // Room to slide the start to a huge page boundary.
            let reserved = bytes + HUGE_PAGE;
            // SAFETY: a fresh anonymous mapping; no existing memory is touched.
            let base =
                unsafe { libc::mmap(std::ptr::null_mut(), reserved, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
            if base == libc::MAP_FAILED {
                return None;
            }
            let lead = (HUGE_PAGE - base as usize % HUGE_PAGE) % HUGE_PAGE;
            // SAFETY: both ranges lie inside the mapping just made and are
            // page aligned (mmap returns page-aligned memory, `bytes` and
            // HUGE_PAGE are multiples of the page size); what stays is
            // `bytes` from `start`.
            let start = unsafe {
                let start = base.cast::<u8>().add(lead);
                if lead > 0 {
                    libc::munmap(base, lead);
                }
                libc::munmap(start.add(bytes).cast(), reserved - lead - bytes);
                // A hint: failure (THP off, old kernel) leaves ordinary pages.
                libc::madvise(start.cast(), bytes, libc::MADV_HUGEPAGE);
                start
            };
            Some(Mapping { start: NonNull::new(start.cast()).expect("mmap never returns null on success"), len, bytes, _owns: PhantomData })
        }

        pub fn bytes(&self) -> usize {
            self.bytes
        }

        pub fn as_slice(&self) -> &[T] {
            // SAFETY: `len` `T`s fit in the mapping, which is zero-filled by
            // the kernel, and zero is a valid `T`; aligned to 2 MiB.
            unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
        }

        pub fn as_mut_slice(&mut self) -> &mut [T] {
            // SAFETY: as in `as_slice`, and `&mut self` is unique.
            unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.len) }
        }
    }

    impl<T> Drop for Mapping<T> {
        fn drop(&mut self) {
            // SAFETY: exactly the range `new` kept; nothing borrows it anymore.
            unsafe {
                libc::munmap(self.start.as_ptr().cast(), self.bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_huge_arrays_start_zeroed_and_hold_writes() {
        for len in [0, 1, 1000, HUGE_PAGE / 8, HUGE_PAGE / 8 * 3 + 5] {
            let mut a: Zeroed<u64> = Zeroed::new(len);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|&v| v == 0));
            if len > 1 {
                a[0] = 3;
                a[len - 1] = 7;
                assert_eq!((a[0], a[1], a[len - 1]), (3, if len == 2 { 7 } else { 0 }, 7));
            }
            assert!(a.memory_bytes() >= len * 8);
        }
    }

    #[test]
    fn prepared_arrays_start_zeroed_whatever_their_size() {
        for len in [0, 1000, HUGE_PAGE / 8 * 2 + 3] {
            let pending: Pending<u64> = Zeroed::prepare(len);
            assert_eq!(pending.len(), len);
            let mut a = pending.take();
            assert_eq!(a.len(), len);
            assert!(a.memory_bytes() >= len * 8);
            assert!(a.iter().all(|&v| v == 0));
            if len > 0 {
                a[len - 1] = 9;
                assert_eq!(a[len - 1], 9);
            }
            a.drop_off_path();
            // Given back before it was taken, ready or not.
            Zeroed::<u64>::prepare(len).drop_off_path();
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_huge_array_is_its_own_aligned_mapping() {
        let huge: Zeroed<u64> = Zeroed::new(HUGE_PAGE / 8 * 3 + 5);
        assert_eq!(huge.as_ptr() as usize % HUGE_PAGE, 0, "a huge array starts on a huge page");
        assert_eq!(huge.memory_bytes(), 3 * HUGE_PAGE + 4096);
    }
}
