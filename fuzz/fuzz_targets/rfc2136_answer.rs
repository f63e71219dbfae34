#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wakufleet_fuzz::rfc2136_answer(data));
