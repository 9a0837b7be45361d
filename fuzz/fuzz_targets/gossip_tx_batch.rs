#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lode_node::fuzz::gossip_tx_batch(data));
