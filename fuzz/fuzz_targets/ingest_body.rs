#![no_main]

include!("../checks/ingest_body.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
