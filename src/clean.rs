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
//! | valid UTF-8 text, TAB                   | unchanged                 |
//! | C0 control `0x00`–`0x1F` (not TAB)      | caret notation: `^@`…`^_` (ESC is `^[`, CR is `^M`) |
//! | DEL `0x7F`                              | `^?`                      |
//! | C1 control U+0080–U+009F                | `<U+0080>`…`<U+009F>`     |
//! | bidi override/isolate U+202A–U+202E, U+2066–U+2069 | `<U+202E>` etc. |
//! | invalid UTF-8                           | U+FFFD, one per bad sequence (as `String::from_utf8_lossy`) |
//!
//! Caret notation is what `cat -v` and most shells print, so netcat users
//! recognise it. The output never holds a byte below 0x20 other than TAB, nor
//! 0x7F, nor a raw C1 or bidi control; the property tests in
//! `tests/clean_props.rs` check exactly that.

/// The replacement character U+FFFD, UTF-8 encoded.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Appends the visible, safe form of `text` to `out`.
pub fn clean_into(out: &mut Vec<u8>, text: &[u8]) {
    // Fast path: printable ASCII and TAB, by far the common case, is copied
    // as is after one pass that the compiler vectorises.
    if text.iter().all(|&b| is_plain_ascii(b)) {
        out.extend_from_slice(text);
        return;
    }
    for chunk in text.utf8_chunks() {
        clean_valid(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(REPLACEMENT);
        }
    }
}

/// The cleaned form of `text` as a new string, for names and log lines.
pub fn clean(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    clean_into(&mut out, text);
    String::from_utf8(out).expect("clean_into emits UTF-8")
}

/// True if `text` would come out of [`clean_into`] unchanged.
pub fn is_clean(text: &[u8]) -> bool {
    let mut out = Vec::with_capacity(text.len());
    clean_into(&mut out, text);
    out == text
}

fn is_plain_ascii(b: u8) -> bool {
    (0x20..0x7F).contains(&b) || b == b'\t'
}

/// Cleans text already known to be valid UTF-8.
fn clean_valid(out: &mut Vec<u8>, text: &[u8]) {
    let mut copied = 0;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let special = match b {
            b'\t' => 0,
            0x00..=0x1F | 0x7F => 1,
            // U+0080–U+009F are encoded C2 80 – C2 9F.
            0xC2 if (0x80..=0x9F).contains(&text[i + 1]) => 2,
            // U+202A–U+202E are E2 80 AA – E2 80 AE; U+2066–U+2069 are
            // E2 81 A6 – E2 81 A9.
            0xE2 if (text[i + 1] == 0x80 && (0xAA..=0xAE).contains(&text[i + 2]))
                || (text[i + 1] == 0x81 && (0xA6..=0xA9).contains(&text[i + 2])) =>
            {
                3
            }
            _ => 0,
        };
        if special == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&text[copied..i]);
        match special {
            1 => out.extend_from_slice(&[b'^', b ^ 0x40]),
            _ => {
                let s = std::str::from_utf8(&text[i..i + special]).expect("valid chunk");
                let c = s.chars().next().expect("one char") as u32;
                out.extend_from_slice(format!("<U+{c:04X}>").as_bytes());
            }
        }
        i += special;
        copied = i;
    }
    out.extend_from_slice(&text[copied..]);
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
        // Neighbours of the ranges pass: U+00A0, U+2029, U+202F, U+2065, U+206A.
        for s in ["\u{a0}", "\u{2029}", "\u{202f}", "\u{2065}", "\u{206a}"] {
            assert_eq!(c(s.as_bytes()), s);
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
