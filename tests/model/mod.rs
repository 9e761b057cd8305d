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

/// The Default_Ignorable_Code_Point ranges of Unicode's
/// DerivedCoreProperties.txt, copied here so the name checks are held to
/// the standard's list, not to what the implementation's crates say.
const DEFAULT_IGNORABLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// True for characters no name may hold: the default-ignorable ones and the
/// braille blank U+2800, which draws nothing.
pub fn is_invisible(c: char) -> bool {
    let u = c as u32;
    u == 0x2800
        || DEFAULT_IGNORABLE
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&u))
}

/// Every reason `parse_name` may give, but the `invisible character U+XXXX`
/// family, which `check_name` checks on its own.
pub const NAME_REASONS: &[&str] = &[
    "not valid UTF-8",
    "empty",
    "longer than 24 characters",
    "must start with a letter",
    "only letters, digits, _ - . allowed",
    "looks like an address",
];

/// Latin letters and a character of another script (or a compatibility
/// form) that looks the same, from Unicode's confusables.txt. Replacing one
/// for the other must not change a name's skeleton.
pub const CONFUSABLES: &[(char, char)] = &[
    ('a', '\u{0430}'),  // Cyrillic а
    ('c', '\u{0441}'),  // Cyrillic с
    ('e', '\u{0435}'),  // Cyrillic е
    ('o', '\u{043E}'),  // Cyrillic о
    ('o', '\u{03BF}'),  // Greek ο
    ('p', '\u{0440}'),  // Cyrillic р
    ('x', '\u{0445}'),  // Cyrillic х
    ('y', '\u{0443}'),  // Cyrillic у
    ('i', '\u{0456}'),  // Cyrillic і
    ('j', '\u{0458}'),  // Cyrillic ј
    ('s', '\u{0455}'),  // Cyrillic ѕ
    ('h', '\u{04BB}'),  // Cyrillic һ
    ('v', '\u{03BD}'),  // Greek ν
    ('l', '\u{04CF}'),  // Cyrillic ӏ
    ('d', '\u{0501}'),  // Cyrillic ԁ
    ('q', '\u{051B}'),  // Cyrillic ԛ
    ('w', '\u{051D}'),  // Cyrillic ԝ
    ('n', '\u{0578}'),  // Armenian ո
    ('u', '\u{057D}'),  // Armenian ս
    ('g', '\u{0261}'),  // Latin script ɡ
    ('m', '\u{217F}'),  // small roman numeral ⅿ
    ('t', '\u{1D42D}'), // mathematical bold 𝐭
    ('a', '\u{FF41}'),  // fullwidth ａ
];

/// Runs `parse_name` (and `check_single_script` on what it accepts) on any
/// bytes and checks everything the name rules promise. Never panics but on
/// a broken promise.
pub fn check_name(raw: &[u8]) {
    use natter::names::{check_single_script, name_key, name_skeleton, parse_name};
    use unicode_normalization::{UnicodeNormalization, is_nfc};

    let got = parse_name(raw);
    assert_eq!(got, parse_name(raw), "parse_name is deterministic");
    let name = match got {
        Ok(name) => name,
        Err(why) => {
            assert!(
                NAME_REASONS.contains(&why.as_str()) || why.starts_with("invisible character U+"),
                "unexpected reason {why:?} for {raw:?}"
            );
            return;
        }
    };
    let text = std::str::from_utf8(raw).expect("an accepted name is UTF-8");
    let display = &name.display;
    // What is shown is the NFC of what was typed.
    assert_eq!(display, &text.nfc().collect::<String>());
    assert!(is_nfc(display), "display {display:?} is NFC");
    let count = display.chars().count();
    assert!(
        (1..=24).contains(&count),
        "{count} characters in {display:?}"
    );
    // Nothing invisible, nothing the cleaner would change.
    if let Some(c) = display.chars().find(|&c| is_invisible(c)) {
        panic!("invisible U+{:04X} in accepted {display:?}", c as u32);
    }
    assert!(natter::clean::is_clean(display.as_bytes()), "{display:?}");
    assert!(!display.chars().any(is_dangerous));
    // A letter first; then letters, marks, digits, `_ - .`.
    let first = display.chars().next().unwrap();
    assert!(first.is_alphabetic(), "{display:?} starts with a letter");
    for c in display.chars() {
        assert!(
            c.is_alphanumeric()
                || unicode_normalization::char::is_combining_mark(c)
                || matches!(c, '_' | '-' | '.'),
            "U+{:04X} in {display:?}",
            c as u32
        );
    }
    // Key and skeleton are what the functions give, and stable.
    assert_eq!(name.key, name_key(display));
    assert_eq!(name.key, name_key(text), "the key does not depend on NFC");
    assert_eq!(name_key(&name.key), name.key, "the key is idempotent");
    assert_eq!(name.skeleton, name_skeleton(&name.key));
    assert_eq!(
        name_skeleton(&name.skeleton),
        name.skeleton,
        "the skeleton is idempotent"
    );
    // Parsing what is shown gives the same name back.
    assert_eq!(parse_name(display.as_bytes()).as_ref(), Ok(&name));
    // Case is not checked here: changing case is not always sound on any
    // name (`ı` uppercases to `I`, whose key is `i`; `ῼ` uppercases to `ΩΙ`,
    // moving a following diaeresis from the omega to the iota; letters
    // newer than the case-folding data fold to themselves).
    // `tests/name_props.rs` checks case on letters where it is sound.
    // A refusal for mixing names at least two scripts.
    if let Err(why) = check_single_script(&name) {
        let scripts = why
            .strip_prefix("mixes scripts: ")
            .unwrap_or_else(|| panic!("reason {why:?}"));
        assert!(scripts.contains(" and "), "{why:?} names two scripts");
    }
}
