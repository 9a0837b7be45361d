#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lode_node::fuzz::abci_frame(data));
