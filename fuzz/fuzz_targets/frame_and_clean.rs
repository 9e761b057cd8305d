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
use natter::clean::{clean, clean_into, is_clean};
use natter::line_buffer::{Frame, LineBuffer};

type Owned = (bool, Vec<u8>);

fn owned(f: Frame<'_>) -> Owned {
    match f {
        Frame::Line(l) => (false, l.to_vec()),
        Frame::Cut(l) => (true, l.to_vec()),
    }
}

/// Feeds the chunks as reads, taking every frame after each (as the server
/// does), then the last line at end of input.
fn frames<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, max: usize) -> Vec<Owned> {
    let mut buf = LineBuffer::default();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.push(chunk);
        while let Some(f) = buf.next(max) {
            out.push(owned(f));
        }
        buf.release_if_empty();
    }
    if let Some(f) = buf.finish(max) {
        out.push(owned(f));
    }
    out
}

/// The `\n`-split with one trailing `\r` removed; the last piece only if not
/// empty.
fn newline_pieces(input: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let last = pieces.pop().unwrap();
    if !last.is_empty() {
        pieces.push(last);
    }
    pieces
        .into_iter()
        .map(|p| p.strip_suffix(b"\r").unwrap_or(p).to_vec())
        .collect()
}

fn is_dangerous(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && c != '\t')
        || u == 0x7F
        || (0x80..=0x9F).contains(&u)
        || (0x202A..=0x202E).contains(&u)
        || (0x2066..=0x2069).contains(&u)
}

/// The cleaner's spec, independent of `src/clean.rs`.
fn model_clean(input: &[u8]) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(input).chars() {
        let u = c as u32;
        if (u < 0x20 && c != '\t') || u == 0x7F {
            out.push('^');
            out.push(char::from((u as u8) ^ 0x40));
        } else if is_dangerous(c) {
            out.push_str(&format!("<U+{u:04X}>"));
        } else {
            out.push(c);
        }
    }
    out
}

fn assert_safe(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("cleaned output is valid UTF-8");
    assert!(
        out.iter().all(|&b| (b >= 0x20 || b == b'\t') && b != 0x7F),
        "raw C0 or DEL in {text:?}"
    );
    assert!(
        !text.chars().any(is_dangerous),
        "raw C1 or bidi in {text:?}"
    );
}

/// Cleans one framed line the way the server formats a chat line and checks
/// everything the spec promises about it.
fn check_line(line: &[u8]) {
    let mut out = b"127.0.0.1:40000: ".to_vec();
    let prefix = out.len();
    clean_into(&mut out, line);
    assert_eq!(&out[prefix..], model_clean(line).as_bytes());
    assert_safe(&out[prefix..]);
    out.push(b'\n');
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(is_clean(line), &out[prefix..out.len() - 1] == line);
}

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
});
