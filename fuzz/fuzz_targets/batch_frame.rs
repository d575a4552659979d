#![no_main]

include!("../checks/input.rs");
include!("../checks/records.rs");
include!("../checks/batch_frame.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
