#![no_main]

include!("../checks/input.rs");
include!("../checks/query_params.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
