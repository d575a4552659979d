#![no_main]

include!("../checks/input.rs");
include!("../checks/signed_link.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
