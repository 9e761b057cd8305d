//! The framer's and the cleaner's specification, written independently of
//! `src/`, shared by the property tests (`tests/clean_props.rs`, as
//! `mod model`) and the fuzz target (`fuzz/fuzz_targets/frame_and_clean.rs`,
//! through `#[path]`), so both check the same promises.

#![allow(dead_code)] // Each user takes a different subset.

use natter::clean::clean_into;
use natter::line_buffer::{Frame, LineBuffer};

/// A frame as owned data: `(was_cut, bytes)`.
pub type Owned = (bool, Vec<u8>);

pub fn owned(f: Frame<'_>) -> Owned {
    match f {
        Frame::Line(l) => (false, l.to_vec()),
        Frame::Cut(l) => (true, l.to_vec()),
    }
}

/// Feeds `chunks` in order, takes every frame after each push (as the server
/// does after each read), then the last line at end of input.
pub fn frames<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, max: usize) -> Vec<Owned> {
    let mut buf = LineBuffer::default();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.push(chunk);
        while let Some(f) = buf.next(max) {
            out.push(owned(f));
        }
        // The server calls this after each read; it must not lose bytes.
        buf.release_if_empty();
    }
    if let Some(f) = buf.finish(max) {
        out.push(owned(f));
    }
    out
}

/// The reference split: pieces between `\n`s, one trailing `\r` removed from
/// each; the last piece counts only if it is not empty (bytes after the last
/// `\n`, at end of input).
pub fn newline_pieces(input: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let last = pieces.pop().expect("split yields at least one piece");
    if !last.is_empty() {
        pieces.push(last);
    }
    pieces
        .into_iter()
        .map(|p| p.strip_suffix(b"\r").unwrap_or(p).to_vec())
        .collect()
}

/// True for the characters the cleaner must never let through raw.
pub fn is_dangerous(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && c != '\t')
        || u == 0x7F
        || (0x80..=0x9F).contains(&u)
        // Line and paragraph separators, then the bidi overrides.
        || (0x2028..=0x202E).contains(&u)
        || (0x2066..=0x2069).contains(&u)
        // Zero-width no-break space (a byte-order mark only at the start).
        || u == 0xFEFF
        // Tag characters.
        || (0xE0000..=0xE007F).contains(&u)
}

/// The spec of the cleaner, written independently of `src/clean.rs`: decode
/// like `String::from_utf8_lossy`, drop one U+FEFF (a byte-order mark) at the
/// very start, then show C0 and DEL in caret notation and every other
/// dangerous character as `<U+XXXX>` (at least four hex digits).
pub fn model_clean(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    let mut out = String::new();
    for c in text.chars() {
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

/// Asserts the safety promise on cleaned output.
pub fn assert_safe(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("cleaned output is valid UTF-8");
    for (i, &b) in out.iter().enumerate() {
        assert!(
            b >= 0x20 || b == b'\t',
            "control byte {b:#04x} at {i} in {text:?}"
        );
        assert_ne!(b, 0x7F, "DEL at {i} in {text:?}");
    }
    if let Some(c) = text.chars().find(|&c| is_dangerous(c)) {
        panic!("raw U+{:04X} in {text:?}", c as u32);
    }
}

/// Cleans one framed line the way the server formats a chat line and checks
/// everything the spec promises about it: the cleaner matches the model, the
/// text is safe, and the line holds exactly one `\n`, at its end.
pub fn check_line(line: &[u8]) {
    let mut out = b"127.0.0.1:40000: ".to_vec();
    let prefix = out.len();
    clean_into(&mut out, line);
    assert_eq!(&out[prefix..], model_clean(line).as_bytes());
    assert_eq!(
        natter::clean::cleaned_len(line),
        out.len() - prefix,
        "cleaned_len"
    );
    assert_safe(&out[prefix..]);
    out.push(b'\n');
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(
        natter::clean::is_clean(line),
        &out[prefix..out.len() - 1] == line
    );
}
