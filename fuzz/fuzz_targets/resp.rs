//! Arbitrary bytes as what Redis sends a node: RESP values (replies and
//! pushed messages), and message payloads between nodes. Asserts what
//! `tests/resp_props.rs` asserts: decoding never panics, stays within its
//! limits, and what it accepts re-encodes to the same thing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use natter::resp::{self, Limits};
use natter::wire;

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_bulk: 4096,
        max_array: 256,
        max_depth: 4,
    };
    // A stream of values, as a connection reads them.
    let mut rest = data;
    while let Ok(Some((value, used))) = resp::decode(rest, small) {
        assert!(used > 0 && used <= rest.len());
        let mut again = Vec::new();
        resp::encode(&mut again, &value);
        assert_eq!(resp::decode(&again, small).unwrap().unwrap().0, value);
        rest = &rest[used..];
    }
    // The same bytes as a message between nodes.
    if let Ok(message) = wire::decode(data, 256) {
        assert!(wire::check_node(&message.node).is_ok());
        let mut again = Vec::new();
        wire::encode_header(&mut again, &message.node, message.seq);
        for record in &message.records {
            wire::encode_record(&mut again, record);
        }
        assert_eq!(wire::decode(&again, 256).unwrap(), message);
    }
});
