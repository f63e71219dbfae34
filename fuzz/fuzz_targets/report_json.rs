#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wakufleet_fuzz::report_json(data));
