//! Any bytes a client sends as a request frame must decode to a request or a
//! typed error: never a panic, never an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = cairn_kafka::decode_request(frame);
});
