//! Property tests for the two codecs of the cluster link, whose input is
//! whatever Redis (or someone publishing into a channel) sends: RESP
//! (`natter::resp`) and the messages between nodes (`natter::wire`).

use natter::resp::{self, Limits, Value};
use natter::wire;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        proptest::collection::vec(
            any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
            0..20
        )
        .prop_map(Value::Simple),
        proptest::collection::vec(
            any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
            0..20
        )
        .prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)).prop_map(Value::Bulk),
        Just(Value::Array(None)),
    ];
    leaf.prop_recursive(3, 32, 8, |inner| {
        proptest::collection::vec(inner, 0..8).prop_map(|v| Value::Array(Some(v)))
    })
}

proptest! {
    #[test]
    fn what_is_encoded_decodes_whole_and_every_prefix_asks_for_more(v in value()) {
        let mut bytes = Vec::new();
        resp::encode(&mut bytes, &v);
        let (back, used) = resp::decode(&bytes, resp::LIMITS).unwrap().unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(used, bytes.len());
        for cut in 0..bytes.len() {
            prop_assert_eq!(resp::decode(&bytes[..cut], resp::LIMITS), Ok(None));
        }
    }

    #[test]
    fn a_command_is_an_array_of_bulk_strings(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6)) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let mut bytes = Vec::new();
        resp::encode_command(&mut bytes, &refs);
        let expected = Value::Array(Some(args.iter().map(|a| Value::Bulk(Some(a.clone()))).collect()));
        prop_assert_eq!(resp::decode(&bytes, resp::LIMITS).unwrap().unwrap().0, expected);
    }

    #[test]
    fn any_bytes_decode_to_a_value_more_needed_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let small = Limits { max_bulk: 64, max_array: 16, max_depth: 3 };
        if let Ok(Some((v, used))) = resp::decode(&bytes, small) {
            prop_assert!(used <= bytes.len());
            // What was decoded encodes back to something that decodes the same.
            let mut again = Vec::new();
            resp::encode(&mut again, &v);
            prop_assert_eq!(resp::decode(&again, small).unwrap().unwrap().0, v);
        }
    }

    #[test]
    fn any_payload_is_a_checked_message_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(message) = wire::decode(&bytes, 100) {
            prop_assert!(wire::check_node(&message.node).is_ok());
            // Re-encoding gives a payload that decodes the same.
            let mut again = Vec::new();
            wire::encode_header(&mut again, &message.node, message.seq);
            for r in &message.records {
                wire::encode_record(&mut again, r);
            }
            prop_assert_eq!(wire::decode(&again, 100).unwrap(), message);
        }
    }

    #[test]
    fn hostile_text_in_a_record_is_refused(text in "[\\x00-\\x08\\x0b-\\x1f\\x7f\u{80}-\u{9f}\u{202e}]{1,8}") {
        let payload = format!("natter1 n 1\nsay #lobby alice {text}\n");
        prop_assert!(wire::decode(payload.as_bytes(), 100).is_err());
    }
}
