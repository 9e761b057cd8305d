//! Arbitrary bytes, split where the fuzzer says, through the framer
//! (`LineBuffer`) and the cleaner (`clean_into`), with the invariants of
//! `tests/clean_props.rs` asserted on every input.
//!
//! Input layout (so the fuzzer controls everything):
//!
//! - byte 0: the line limit: `1 + b % 64` for most values, "unlimited"
//!   (`1 << 20`, far above any input libFuzzer makes) for `b >= 224`;
//! - byte 1: how many split points follow (`b % 16`);
//! - that many bytes: the lengths of the first chunks, in order;
//! - the rest: the byte stream a client sends (the last chunk is whatever
//!   the lengths leave).

#![no_main]

use libfuzzer_sys::fuzz_target;
use natter::clean::{clean, cleaned_len};

// The specification shared with the property tests.
#[path = "../../tests/model/mod.rs"]
mod model;

use model::{Owned, assert_safe, check_line, frames, model_clean, newline_pieces};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let max = if limit >= 224 {
        1 << 20
    } else {
        1 + (limit % 64) as usize
    };
    let n = ((n % 16) as usize).min(rest.len());
    let (lengths, input) = rest.split_at(n);

    // Chunks of the fuzzer's lengths, the remainder last.
    let mut chunks = Vec::new();
    let mut at = 0;
    for &len in lengths {
        let end = (at + len as usize).min(input.len());
        chunks.push(&input[at..end]);
        at = end;
    }
    chunks.push(&input[at..]);

    // Splitting never changes the frames.
    let got = frames(chunks.iter().copied(), max);
    assert_eq!(got, frames([input], max), "split changed the frames");

    // With no limit in reach: exactly the newline split.
    let pieces = newline_pieces(input);
    let unlimited = frames(chunks.iter().copied(), input.len() + 1);
    let want: Vec<Owned> = pieces.iter().map(|p| (false, p.clone())).collect();
    assert_eq!(unlimited, want, "frames differ from the newline split");

    // With the limit: one frame per line, none longer than max; a cut keeps
    // the start of the line and backs off only over continuation bytes.
    assert_eq!(got.len(), pieces.len(), "one frame per line");
    for ((cut, bytes), piece) in got.iter().zip(&pieces) {
        assert!(bytes.len() <= max, "frame longer than max");
        if piece.len() <= max {
            assert!(!cut && bytes == piece, "a line that fits is whole");
        } else {
            assert!(*cut, "a line over max is a Cut");
            assert!(piece.starts_with(bytes));
            assert!(bytes.len() + 3 >= max);
            if bytes.len() < max {
                assert!(piece[bytes.len()] & 0xC0 != 0x80);
                assert!(
                    piece[bytes.len() + 1..=max]
                        .iter()
                        .all(|&b| b & 0xC0 == 0x80)
                );
            }
        }
        check_line(bytes);
    }

    // The whole stream through the cleaner, as one piece of text.
    let cleaned = clean(input);
    assert_eq!(cleaned, model_clean(input));
    assert_safe(cleaned.as_bytes());
    assert_eq!(cleaned_len(input), cleaned.len(), "cleaned_len");
});
