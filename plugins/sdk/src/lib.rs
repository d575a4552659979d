//! Write a Tally click filter in Rust.
//!
//! ```no_run
//! use tally_filter_sdk::{Batch, Filter, Verdicts};
//!
//! #[derive(Default)]
//! struct MyFilter {
//!     seen: u64,
//! }
//!
//! impl Filter for MyFilter {
//!     fn filter(&mut self, batch: &Batch, out: &mut Verdicts) {
//!         for i in 0..batch.len() {
//!             self.seen += 1;
//!             if batch.user_agent(i).contains("bot") {
//!                 out.drop(i, 1);
//!             } else if let Some(plan) = batch.attr(i, "plan") {
//!                 out.tag(i, "plan", plan);
//!             }
//!         }
//!     }
//! }
//!
//! tally_filter_sdk::export_filter!(MyFilter);
//! ```
//! Build with `cargo build --release --target wasm32-wasip2`: the `cdylib`
//! is the component the edge runs. The contract is `wit/filter.wit`.
//!
//! The exported filter is one `Default` instance kept across calls, so it
//! can keep state (counters, caches); the edge may rebuild it at any time,
//! so that state must be safe to lose.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "filter",
        pub_export_macro: true,
        default_bindings_module: "tally_filter_sdk::bindings",
    });
}

use bindings::tally::filter::types as wire;
pub use wire::{ClickBatch, Strings};

/// Keep the click.
pub const KEEP: u16 = 0;

/// A batch, read column-wise without copying.
///
/// Invariant: every string column is UTF-8 and cut at character
/// boundaries, so a field is read without checking it again. The contract
/// (`wit/filter.wit`, `strings`) promises it and the host keeps it by
/// construction: its columns are only ever built from Rust `&str`s
/// (`tally_filter::batch::Columns`). [`Batch::new`] checks it, for batches
/// made anywhere else (a plugin's own tests).
pub struct Batch(ClickBatch);

/// A string column of a batch is not UTF-8, or is cut mid-character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8;

impl Batch {
    /// The batch, once every string column is checked.
    pub fn new(batch: ClickBatch) -> Result<Batch, NotUtf8> {
        let b = &batch;
        let columns = [&b.click_id, &b.user_id, &b.ip, &b.user_agent, &b.country, &b.region, &b.attr_keys, &b.attr_values];
        columns.iter().all(|s| utf8(s)).then_some(Batch(batch)).ok_or(NotUtf8)
    }

    /// The batch the host sent, unchecked.
    ///
    /// # Safety
    /// Its string columns must be UTF-8, cut at character boundaries (what
    /// the contract promises of the host).
    pub unsafe fn from_host(batch: ClickBatch) -> Batch {
        Batch(batch)
    }

    pub fn len(&self) -> usize {
        self.0.ad_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn ad_id(&self, i: usize) -> u64 {
        self.0.ad_id[i]
    }
    pub fn campaign_id(&self, i: usize) -> u64 {
        self.0.campaign_id[i]
    }
    pub fn ts_ms(&self, i: usize) -> u64 {
        self.0.ts_ms[i]
    }
    pub fn cost_micros(&self, i: usize) -> u64 {
        self.0.cost_micros[i]
    }
    pub fn click_id(&self, i: usize) -> &str {
        get(&self.0.click_id, i)
    }
    pub fn user_id(&self, i: usize) -> &str {
        get(&self.0.user_id, i)
    }
    pub fn ip(&self, i: usize) -> &str {
        get(&self.0.ip, i)
    }
    pub fn user_agent(&self, i: usize) -> &str {
        get(&self.0.user_agent, i)
    }
    /// ISO 3166-1 alpha-2 country the click carried, or "".
    pub fn country(&self, i: usize) -> &str {
        get(&self.0.country, i)
    }
    /// Region code the click carried, or "".
    pub fn region(&self, i: usize) -> &str {
        get(&self.0.region, i)
    }
    /// Custom attributes of click i, as (key, value) pairs in the order sent.
    pub fn attrs(&self, i: usize) -> impl Iterator<Item = (&str, &str)> {
        let b = &self.0;
        (start(&b.attr_ends, i)..b.attr_ends[i] as usize).map(|p| (get(&b.attr_keys, p), get(&b.attr_values, p)))
    }
    /// The first value of attribute `key` on click i.
    pub fn attr(&self, i: usize, key: &str) -> Option<&str> {
        self.attrs(i).find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

fn start(ends: &[u32], i: usize) -> usize {
    if i == 0 {
        0
    } else {
        ends[i - 1] as usize
    }
}

fn get(s: &Strings, i: usize) -> &str {
    let bytes = &s.bytes[start(&s.ends, i)..s.ends[i] as usize];
    // SAFETY: a whole string of a column `Batch`'s invariant holds for (a
    // bad offset panics in the slicing above, failing the call).
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// Every string of the column, cut at its ends, is UTF-8 (and the ends are
/// in order, within the bytes).
fn utf8(s: &Strings) -> bool {
    let mut start = 0;
    s.ends.iter().all(|&end| {
        let ok = (start..=s.bytes.len()).contains(&(end as usize)) && std::str::from_utf8(&s.bytes[start..end as usize]).is_ok();
        start = end as usize;
        ok
    })
}

/// The answer being built: every click starts kept and untagged.
///
/// The edge refuses the whole answer (and applies the tenant's failure
/// policy to the batch) if it holds more than 4 tags per click on average,
/// a key over 64 bytes or a value over 256.
pub struct Verdicts(wire::Verdicts);

impl Verdicts {
    fn new(clicks: usize) -> Verdicts {
        let empty = || Strings { bytes: Vec::new(), ends: Vec::new() };
        Verdicts(wire::Verdicts { codes: vec![KEEP; clicks], tag_click: Vec::new(), tag_keys: empty(), tag_values: empty() })
    }
    /// Drops click i with reason `code` (non-zero: 0 is [`KEEP`]).
    pub fn drop(&mut self, i: usize, code: u16) {
        self.0.codes[i] = code;
    }
    /// Tags click i with dimension `key` = `value` (once per key and click:
    /// the edge refuses an answer that tags a click twice with one key).
    pub fn tag(&mut self, i: usize, key: &str, value: &str) {
        let v = &mut self.0;
        if v.tag_click.capacity() == 0 {
            // Room for a tag per click like this one at the first tag,
            // rather than growing five arrays from nothing.
            let n = v.codes.len();
            v.tag_click.reserve(n);
            v.tag_keys.ends.reserve(n);
            v.tag_values.ends.reserve(n);
            v.tag_keys.bytes.reserve(n * key.len());
            v.tag_values.bytes.reserve(n * value.len());
        }
        self.0.tag_click.push(i as u32);
        push(&mut self.0.tag_keys, key);
        push(&mut self.0.tag_values, value);
    }
}

fn push(s: &mut Strings, v: &str) {
    s.bytes.extend_from_slice(v.as_bytes());
    s.ends.push(s.bytes.len() as u32);
}

/// A click filter. The component keeps one instance, made by `Default` on
/// the first call, for as long as the edge keeps the component alive.
pub trait Filter: Default {
    fn filter(&mut self, batch: &Batch, out: &mut Verdicts);
}

/// Runs `filter` over a raw batch: what [`export_filter!`] calls.
///
/// # Safety
/// As [`Batch::from_host`]: the batch comes from the host.
#[doc(hidden)]
pub unsafe fn run<F: Filter>(filter: &mut F, batch: ClickBatch) -> wire::Verdicts {
    // SAFETY: the caller's promise.
    let batch = unsafe { Batch::from_host(batch) };
    let mut out = Verdicts::new(batch.len());
    filter.filter(&batch, &mut out);
    out.0
}

/// Exports a [`Filter`] as the component's `filter` function.
#[macro_export]
macro_rules! export_filter {
    ($t:ty) => {
        struct __TallyExport;
        impl $crate::bindings::Guest for __TallyExport {
            fn filter(batch: $crate::ClickBatch) -> $crate::bindings::tally::filter::types::Verdicts {
                // Calls come one at a time on one thread: the instance lives
                // here between them.
                ::std::thread_local! {
                    static FILTER: ::std::cell::RefCell<$t> = ::std::cell::RefCell::new(<$t as ::std::default::Default>::default());
                }
                // SAFETY: the batch is the host's, UTF-8 as the contract says.
                FILTER.with_borrow_mut(|f| unsafe { $crate::run(f, batch) })
            }
        }
        $crate::bindings::export!(__TallyExport with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Strings {
        let mut s = Strings { bytes: Vec::new(), ends: Vec::new() };
        items.iter().for_each(|v| push(&mut s, v));
        s
    }

    fn batch() -> Batch {
        Batch(ClickBatch {
            ad_id: vec![1, 2, 3],
            campaign_id: vec![10, 20, 30],
            ts_ms: vec![100, 200, 300],
            cost_micros: vec![0, 5, 0],
            click_id: strings(&["a", "b", "c"]),
            user_id: strings(&["u1", "", "u3"]),
            ip: strings(&["10.1.2.3", "", "::1"]),
            user_agent: strings(&["Mozilla", "bot", ""]),
            country: strings(&["", "DE", "FR"]),
            region: strings(&["", "BY", ""]),
            attr_ends: vec![2, 2, 3],
            attr_keys: strings(&["plan", "ab", "plan"]),
            attr_values: strings(&["pro", "b", "free"]),
        })
    }

    #[test]
    fn batch_reads_columns_per_click() {
        let b = batch();
        assert_eq!((b.len(), b.ad_id(2), b.ts_ms(1), b.click_id(1)), (3, 3, 200, "b"));
        assert_eq!((b.ip(0), b.user_id(1), b.country(1), b.region(1), b.country(0)), ("10.1.2.3", "", "DE", "BY", ""));
        assert_eq!(b.attrs(0).collect::<Vec<_>>(), [("plan", "pro"), ("ab", "b")]);
        assert_eq!(b.attrs(1).count(), 0);
        assert_eq!((b.attr(2, "plan"), b.attr(0, "ab"), b.attr(1, "plan")), (Some("free"), Some("b"), None));
    }

    #[test]
    fn a_batch_made_outside_the_host_is_checked() {
        assert!(Batch::new(batch().0).is_ok());
        let mut cut = batch().0;
        cut.user_agent = Strings { bytes: "é".as_bytes().to_vec(), ends: vec![1, 2, 2] };
        assert_eq!(Batch::new(cut).err(), Some(NotUtf8), "cut mid-character");
        let mut bad = batch().0;
        bad.attr_values.bytes[0] = 0xff;
        assert_eq!(Batch::new(bad).err(), Some(NotUtf8));
        let mut past = batch().0;
        past.ip.ends[2] = 100;
        assert_eq!(Batch::new(past).err(), Some(NotUtf8), "an end past the bytes");
    }

    #[derive(Default)]
    struct Counting(u32);

    impl Filter for Counting {
        fn filter(&mut self, batch: &Batch, out: &mut Verdicts) {
            self.0 += 1;
            out.drop(1, 7);
            out.tag(0, "calls", &self.0.to_string());
            out.tag(2, "country", batch.country(2));
        }
    }

    #[test]
    fn verdicts_hold_one_code_per_click_and_the_tags() {
        let mut f = Counting::default();
        // SAFETY: `batch()` is built from `&str`s.
        let v = unsafe {
            run(&mut f, batch().0);
            run(&mut f, batch().0)
        };
        assert_eq!(v.codes, [0, 7, 0]);
        assert_eq!(v.tag_click, [0, 2]);
        assert_eq!((v.tag_keys.bytes, v.tag_keys.ends), (b"callscountry".to_vec(), vec![5, 12]));
        assert_eq!((v.tag_values.bytes, v.tag_values.ends), (b"2FR".to_vec(), vec![1, 3]));
    }
}
