//! Write a Tally click filter in Rust.
//!
//! ```ignore
//! struct MyFilter;
//! impl tally_filter_sdk::Filter for MyFilter {
//!     fn filter(batch: &tally_filter_sdk::Batch, verdicts: &mut [u16]) {
//!         for i in 0..batch.len() {
//!             if batch.user_agent(i).contains("bot") { verdicts[i] = 1; }
//!         }
//!     }
//! }
//! tally_filter_sdk::export_filter!(MyFilter);
//! ```
//! Build with `cargo build --release --target wasm32-wasip2`: the `cdylib`
//! is the component the edge runs. The contract is `wit/filter.wit`.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "filter",
        pub_export_macro: true,
        default_bindings_module: "tally_filter_sdk::bindings",
    });
}

pub use bindings::tally::filter::types::{ClickBatch, Strings};

/// Keep the click.
pub const KEEP: u16 = 0;

/// A batch, read column-wise without copying.
pub struct Batch(pub ClickBatch);

impl Batch {
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
}

fn get(s: &Strings, i: usize) -> &str {
    let start = if i == 0 { 0 } else { s.ends[i - 1] as usize };
    std::str::from_utf8(&s.bytes[start..s.ends[i] as usize]).unwrap_or("")
}

/// A click filter: set `verdicts[i]` to a non-zero reason code to drop click i.
pub trait Filter {
    fn filter(batch: &Batch, verdicts: &mut [u16]);
}

/// Exports a [`Filter`] as the component's `filter` function.
#[macro_export]
macro_rules! export_filter {
    ($t:ty) => {
        struct __TallyExport;
        impl $crate::bindings::Guest for __TallyExport {
            fn filter(batch: $crate::ClickBatch) -> ::std::vec::Vec<u16> {
                let batch = $crate::Batch(batch);
                let mut verdicts = ::std::vec![$crate::KEEP; batch.len()];
                <$t as $crate::Filter>::filter(&batch, &mut verdicts);
                verdicts
            }
        }
        $crate::bindings::export!(__TallyExport with_types_in $crate::bindings);
    };
}
