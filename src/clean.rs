//! Making user text safe to show in someone else's terminal.
//!
//! netcat users see raw bytes, so a chat line is a terminal control channel:
//! `ESC [ 2 J` clears the screen, `ESC ] 0 ; … BEL` retitles the window, a bare
//! `\r` lets one user overwrite the `<who>: ` prefix and pose as another, and
//! bidirectional overrides reorder what follows. Everything a user chooses that
//! others see (message text, names, quit reasons), and message text written to
//! logs, goes through [`clean_into`].
//!
//! The rule keeps every honest character and shows every dangerous one:
//!
//! | input                                   | output                    |
//! |-----------------------------------------|---------------------------|
//! | valid UTF-8 text, TAB, ZWJ U+200D, ZWNJ U+200C | unchanged          |
//! | C0 control `0x00`–`0x1F` (not TAB)      | caret notation: `^@`…`^_` (ESC is `^[`, CR is `^M`) |
//! | DEL `0x7F`                              | `^?`                      |
//! | C1 control U+0080–U+009F                | `<U+0080>`…`<U+009F>`     |
//! | line and paragraph separator U+2028, U+2029 | `<U+2028>`, `<U+2029>` |
//! | bidi override/isolate U+202A–U+202E, U+2066–U+2069 | `<U+202E>` etc. |
//! | U+FEFF after the first character        | `<U+FEFF>`                |
//! | U+FEFF as the very first character      | dropped (a byte-order mark) |
//! | tag characters U+E0000–U+E007F          | `<U+E0041>` etc.          |
//! | invalid UTF-8                           | U+FFFD, one per bad sequence (as `String::from_utf8_lossy`) |
//!
//! Caret notation is what `cat -v` and most shells print, so netcat users
//! recognise it. U+2028 and U+2029 end a line in some terminals and
//! programs that read logs, so they could fake a line of their own. U+FEFF
//! inside text is a zero-width no-break space: invisible, it hides in names
//! and words; as the first character it is the byte-order mark that some
//! editors and Windows tools put at the start of a file or stream, carries
//! nothing, and is dropped rather than shown. Tag characters are invisible
//! too, and spell ASCII text that a reader cannot see but a program (or a
//! language model) that reads the log does; showing them also shows the tag
//! sequences of subdivision flags (England, Scotland, Wales), which is the
//! safer side to err on. ZWJ and ZWNJ stay: emoji sequences and several
//! scripts (Persian, the Indic scripts) need them to render correctly.
//!
//! The output never holds a byte below 0x20 other than TAB, nor 0x7F, nor
//! any of the characters shown above in raw form; the property tests in
//! `tests/clean_props.rs` check exactly that.

use std::io::Write;

/// The replacement character U+FFFD, UTF-8 encoded.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// U+FEFF, UTF-8 encoded: a byte-order mark at the start of text.
const BOM: &[u8] = "\u{FEFF}".as_bytes();

/// Appends the visible, safe form of `text` to `out`.
pub fn clean_into(out: &mut Vec<u8>, text: &[u8]) {
    // Fast path: printable ASCII and TAB, by far the common case, is copied
    // as is after one pass that the compiler vectorises.
    if text.iter().all(|&b| is_plain_ascii(b)) {
        out.extend_from_slice(text);
        return;
    }
    let text = text.strip_prefix(BOM).unwrap_or(text);
    for chunk in text.utf8_chunks() {
        clean_valid(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(REPLACEMENT);
        }
    }
}

/// Exactly how many bytes [`clean_into`] would append for `text`, without
/// allocating, so a caller can check a budget before formatting.
pub fn cleaned_len(text: &[u8]) -> usize {
    if text.iter().all(|&b| is_plain_ascii(b)) {
        return text.len();
    }
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let mut len = 0;
    for chunk in text.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        len += valid.len();
        let mut from = 0;
        while let Some((at, n)) = next_special(valid, from) {
            len += shown_len(&valid[at..at + n]) - n;
            from = at + n;
        }
        if !chunk.invalid().is_empty() {
            len += REPLACEMENT.len();
        }
    }
    len
}

/// The cleaned form of `text` as a new string, for names and log lines.
pub fn clean(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    clean_into(&mut out, text);
    String::from_utf8(out).expect("clean_into emits UTF-8")
}

/// True if `text` would come out of [`clean_into`] unchanged.
pub fn is_clean(text: &[u8]) -> bool {
    std::str::from_utf8(text).is_ok() && !text.starts_with(BOM) && next_special(text, 0).is_none()
}

fn is_plain_ascii(b: u8) -> bool {
    (0x20..0x7F).contains(&b) || b == b'\t'
}

/// Cleans text already known to be valid UTF-8 (after any leading BOM).
fn clean_valid(out: &mut Vec<u8>, text: &[u8]) {
    let mut copied = 0;
    while let Some((at, n)) = next_special(text, copied) {
        out.extend_from_slice(&text[copied..at]);
        show(out, &text[at..at + n]);
        copied = at + n;
    }
    out.extend_from_slice(&text[copied..]);
}

/// The first character at or after `from` in valid UTF-8 `text` that is not
/// shown as itself: its byte offset and encoded length. One definition for
/// cleaning, measuring and checking, so the three cannot disagree.
fn next_special(text: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i < text.len() {
        // Valid UTF-8 guarantees a lead byte is followed by its continuation
        // bytes, so the look-ahead below stays in bounds.
        let n = match text[i] {
            b'\t' => 0,
            0x00..=0x1F | 0x7F => 1,
            // U+0080–U+009F are encoded C2 80 – C2 9F.
            0xC2 if (0x80..=0x9F).contains(&text[i + 1]) => 2,
            // U+2028–U+202E are E2 80 A8 – E2 80 AE; U+2066–U+2069 are
            // E2 81 A6 – E2 81 A9.
            0xE2 if (text[i + 1] == 0x80 && (0xA8..=0xAE).contains(&text[i + 2]))
                || (text[i + 1] == 0x81 && (0xA6..=0xA9).contains(&text[i + 2])) =>
            {
                3
            }
            // U+FEFF is EF BB BF.
            0xEF if text[i + 1] == 0xBB && text[i + 2] == 0xBF => 3,
            // U+E0000–U+E007F are F3 A0 80 80 – F3 A0 81 BF.
            0xF3 if text[i + 1] == 0xA0 && (0x80..=0x81).contains(&text[i + 2]) => 4,
            _ => 0,
        };
        if n > 0 {
            return Some((i, n));
        }
        i += 1;
    }
    None
}

/// Appends the visible form of one special character (as [`next_special`]
/// found it): caret notation for a one-byte control, `<U+XXXX>` otherwise.
fn show(out: &mut Vec<u8>, encoded: &[u8]) {
    if let [b] = encoded {
        out.extend_from_slice(&[b'^', b ^ 0x40]);
        return;
    }
    let c = code_point(encoded);
    write!(out, "<U+{c:04X}>").expect("writing to a Vec cannot fail");
}

/// The length of what [`show`] appends for `encoded`.
fn shown_len(encoded: &[u8]) -> usize {
    if encoded.len() == 1 {
        return 2;
    }
    let c = code_point(encoded);
    let hex_digits = (u32::BITS - c.leading_zeros()).div_ceil(4).max(4);
    "<U+>".len() + hex_digits as usize
}

/// The code point of one UTF-8 encoded character.
fn code_point(encoded: &[u8]) -> u32 {
    let s = std::str::from_utf8(encoded).expect("one valid character");
    s.chars().next().expect("one character") as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &[u8]) -> String {
        clean(text)
    }

    #[test]
    fn honest_text_in_any_script_is_unchanged() {
        for s in [
            "Hi yourself.",
            "tab\tseparated",
            "Grüße, Ünïcödé",
            "こんにちは世界",
            "مرحبا بالعالم",
            "שלום",
            "emoji 🎉👍🏽",
            "",
        ] {
            assert_eq!(c(s.as_bytes()), s);
            assert!(is_clean(s.as_bytes()));
        }
    }

    #[test]
    fn terminal_controls_become_caret_notation() {
        assert_eq!(c(b"\x1b[2Jclear"), "^[[2Jclear");
        assert_eq!(c(b"\x1b]0;owned\x07"), "^[]0;owned^G");
        assert_eq!(c(b"\rAlice: fake"), "^MAlice: fake");
        assert_eq!(c(b"nul\x00del\x7f"), "nul^@del^?");
        assert_eq!(c(b"\x1f"), "^_");
    }

    #[test]
    fn c1_and_bidi_controls_are_named() {
        assert_eq!(c("\u{9b}31m".as_bytes()), "<U+009B>31m");
        assert_eq!(c("\u{85}".as_bytes()), "<U+0085>");
        assert_eq!(c("abc\u{202E}fed".as_bytes()), "abc<U+202E>fed");
        assert_eq!(
            c("\u{2066}x\u{2069}\u{202A}".as_bytes()),
            "<U+2066>x<U+2069><U+202A>"
        );
        // Neighbours of the ranges pass: U+00A0, U+2027, U+202F, U+2065, U+206A.
        for s in ["\u{a0}", "\u{2027}", "\u{202f}", "\u{2065}", "\u{206a}"] {
            assert_eq!(c(s.as_bytes()), s);
        }
    }

    #[test]
    fn separators_inner_bom_and_tags_are_named() {
        assert_eq!(c("a\u{2028}b\u{2029}".as_bytes()), "a<U+2028>b<U+2029>");
        assert_eq!(c("ad\u{FEFF}min".as_bytes()), "ad<U+FEFF>min");
        // "hi" spelt in invisible tag characters, then CANCEL TAG.
        assert_eq!(
            c("ok\u{E0068}\u{E0069}\u{E007F}".as_bytes()),
            "ok<U+E0068><U+E0069><U+E007F>"
        );
        assert_eq!(c("\u{E0000}".as_bytes()), "<U+E0000>");
        // The flag of England is a tag sequence: shown, with its base kept.
        assert_eq!(
            c("\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}".as_bytes()),
            "\u{1F3F4}<U+E0067><U+E0062><U+E0065><U+E006E><U+E0067><U+E007F>"
        );
        // Neighbours pass: U+FEFE, U+FF00, U+DFFFF, U+E0080 (not a tag), and
        // ZWJ and ZWNJ, which emoji and several scripts need.
        for s in [
            "\u{FEFE}",
            "\u{FF00}",
            "\u{DFFFF}",
            "\u{E0080}",
            "\u{E0100}",
            "👩\u{200D}💻",
            "می\u{200C}خواهم",
        ] {
            assert_eq!(c(s.as_bytes()), s);
            assert!(is_clean(s.as_bytes()));
        }
    }

    #[test]
    fn a_leading_byte_order_mark_is_dropped() {
        assert_eq!(c("\u{FEFF}hello".as_bytes()), "hello");
        assert_eq!(c("\u{FEFF}".as_bytes()), "");
        // Only the first one: a second is text, and shown.
        assert_eq!(c("\u{FEFF}\u{FEFF}x".as_bytes()), "<U+FEFF>x");
        // Not at the start: after a space, or after a bad byte.
        assert_eq!(c(" \u{FEFF}".as_bytes()), " <U+FEFF>");
        assert_eq!(c(b"\xff\xef\xbb\xbf"), "\u{FFFD}<U+FEFF>");
        assert!(!is_clean("\u{FEFF}x".as_bytes()));
    }

    #[test]
    fn cleaned_len_is_the_length_clean_into_appends() {
        for s in [
            &b""[..],
            b"plain ascii\tand tab",
            b"\x1b[2J\x7f",
            "\u{9b}\u{202E}\u{2028}\u{2029}\u{2066}".as_bytes(),
            "\u{FEFF}lead and \u{FEFF} inner".as_bytes(),
            "tag \u{E0041} \u{E007F}".as_bytes(),
            b"\xff\xfb\x01\xe2\x82x\xf0\x9f\x8e",
            "Grüße 🎉 \u{200D}".as_bytes(),
        ] {
            let mut out = b"prefix".to_vec();
            clean_into(&mut out, s);
            assert_eq!(cleaned_len(s), out.len() - 6, "{s:?}");
        }
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_bad_sequence() {
        assert_eq!(c(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(c(b"\xff\xfb\x01"), "\u{FFFD}\u{FFFD}^A");
        // A truncated three-byte sequence is one bad sequence.
        assert_eq!(c(b"\xe2\x82x"), "\u{FFFD}x");
        // The same as the standard library's lossy decoding.
        let raw = b"\xf0\x9f\x8e\xff\xc3(\xed\xa0\x80";
        assert_eq!(c(raw), String::from_utf8_lossy(raw));
    }
}
