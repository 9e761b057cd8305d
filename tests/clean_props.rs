//! Property tests for the two functions every hostile byte passes through:
//! the framer (`LineBuffer`) and the cleaner (`clean_into`).
//!
//! Inputs are built from pieces chosen to hit the interesting cases often
//! (newlines, carriage returns, escapes, C1 and bidi controls as UTF-8,
//! multi-byte characters, lone continuation and lead bytes, telnet IAC
//! sequences) mixed with plain random bytes. Case counts are modest so the
//! file runs in a few seconds in debug mode. Failure persistence is off so
//! a failing run writes no `proptest-regressions/` file into the tree; the
//! failing input is printed instead.

use natter::clean::{clean, clean_into, cleaned_len, is_clean};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

mod model;

use model::{Owned, assert_safe, frames, is_dangerous, model_clean, newline_pieces};

/// Cuts `input` at the given points (taken modulo its length, any order,
/// duplicates allowed, so empty chunks happen too).
fn split_at_points<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
    cuts.push(0);
    cuts.push(input.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

/// One input piece, chosen by `kind`, varied by `x`. Pieces are picked to
/// hit the interesting cases often; a plain `Vec<(u8, u32)>` strategy mapped
/// through this is much cheaper to generate in debug builds than a
/// `prop_oneof!` of many strategies, and still shrinks well.
fn piece(kind: u8, x: u32) -> Vec<u8> {
    let ch = |u: u32| char::from_u32(u).unwrap().to_string().into_bytes();
    let bytes = x.to_le_bytes();
    match kind % 27 {
        // Random bytes, 0 to 4 of them.
        0..=3 => bytes[..(x % 5) as usize].to_vec(),
        4..=6 => b"\n".to_vec(),
        7 => b"\r".to_vec(),
        8 | 9 => b"\r\n".to_vec(),
        // Plain words.
        10 | 11 => {
            let n = (x % 9) as usize;
            (0..n).map(|i| b"abc xyz"[(x as usize >> i) % 7]).collect()
        }
        12 => b"\t".to_vec(),
        13 => {
            [&b"\x1b[2J"[..], b"\x1b]0;owned\x07", b"\x00\x7f", b"\x1b"][(x % 4) as usize].to_vec()
        }
        // Telnet negotiation: IAC WILL/WONT/DO/DONT <option>.
        14 => vec![0xFF, 0xFB + (x % 4) as u8, (x >> 8) as u8],
        // The raw C1 byte 0x9B (invalid UTF-8 on its own) or any lone byte
        // of the upper half.
        15 => vec![0x80 | (x as u8)],
        // C1 controls as UTF-8.
        16 => ch(0x80 + x % 0x20),
        // Bidi overrides and isolates.
        17 => ch([
            0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
        ][(x % 9) as usize]),
        // Their neighbours, which must pass unchanged, ZWJ and ZWNJ among them.
        18 => ch([
            0xA0, 0x7E, 0x2027, 0x202F, 0x2065, 0x206A, 0x200F, 0xFFFD, 0x200C, 0x200D, 0xFEFE,
            0xFF00, 0xDFFFF, 0xE0080, 0xE0100,
        ][(x % 15) as usize]),
        // Any character at all.
        19 | 20 => char::from_u32(x % 0x11_0000)
            .unwrap_or('\u{FFFD}')
            .to_string()
            .into_bytes(),
        21 => "é€🎉".as_bytes().to_vec(),
        // Truncated, stray, surrogate and overlong sequences.
        22 => [
            &b"\xe2\x82"[..],
            b"\xf0\x9f\x8e",
            b"\x80\xbf",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
        ][(x % 6) as usize]
            .to_vec(),
        // Line and paragraph separators and U+FEFF (a byte-order mark when it
        // is the first piece, shown anywhere else).
        24 => ch([0x2028, 0x2029, 0xFEFF, 0xFEFF][(x % 4) as usize]),
        // Tag characters: invisible ASCII.
        25 => ch(0xE0000 + x % 0x80),
        // A character cut in two by the framer's limit is a typical case.
        _ => "\u{10FFFF}\u{800}".as_bytes()[..(x % 7) as usize].to_vec(),
    }
}

/// A hostile byte stream of up to a few hundred bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((any::<u8>(), any::<u32>()), 0..48)
        .prop_map(|p| p.into_iter().flat_map(|(k, x)| piece(k, x)).collect())
}

proptest! {
    #![proptest_config(cases(512))]

    /// Where TCP happens to split the stream never changes the frames.
    #[test]
    fn any_split_gives_the_frames_of_the_whole(
        input in stream(),
        points in proptest::collection::vec(any::<usize>(), 0..12),
        max in 1usize..48,
    ) {
        let whole = frames([&input[..]], max);
        let chunks = split_at_points(&input, &points);
        prop_assert_eq!(frames(chunks, max), whole.clone());
        // One byte at a time is the most extreme split.
        prop_assert_eq!(frames(input.chunks(1), max), whole);
    }

    /// With a limit no line reaches, the frames are exactly the `\n`-split
    /// with one trailing `\r` removed, plus the unterminated rest at EOF.
    #[test]
    fn with_a_large_max_frames_are_the_newline_split(
        input in stream(),
        points in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let want: Vec<Owned> = newline_pieces(&input).into_iter().map(|p| (false, p)).collect();
        let max = input.len() + 1;
        prop_assert_eq!(frames(split_at_points(&input, &points), max), want.clone());
        prop_assert_eq!(frames([&input[..]], 1 << 40), want);
    }

    /// With any limit: each `\n`-piece becomes one frame, whole if it fits,
    /// else cut to a prefix of at most `max` bytes that backs off at most
    /// three bytes, and only to keep a UTF-8 character whole.
    #[test]
    fn frames_never_exceed_max_and_cuts_keep_characters_whole(
        input in stream(),
        points in proptest::collection::vec(any::<usize>(), 0..8),
        max in 1usize..24,
    ) {
        let got = frames(split_at_points(&input, &points), max);
        let pieces = newline_pieces(&input);
        prop_assert_eq!(got.len(), pieces.len(), "one frame per line: {:?}", got);
        for ((cut, bytes), piece) in got.iter().zip(&pieces) {
            prop_assert!(bytes.len() <= max, "frame of {} bytes over max {}", bytes.len(), max);
            if piece.len() <= max {
                prop_assert!(!cut);
                prop_assert_eq!(bytes, piece);
                continue;
            }
            prop_assert!(*cut, "a line over max must be a Cut");
            prop_assert!(piece.starts_with(bytes), "a cut keeps the start of the line");
            prop_assert!(bytes.len() + 3 >= max, "cut backs off at most 3 bytes");
            if bytes.len() < max {
                // Backing off happens only over continuation bytes, to
                // the start of the character they belong to.
                let is_cont = |b: u8| b & 0xC0 == 0x80;
                prop_assert!(!is_cont(piece[bytes.len()]));
                prop_assert!(piece[bytes.len() + 1..=max].iter().all(|&b| is_cont(b)));
            }
            if max >= 4 && std::str::from_utf8(piece).is_ok() {
                // Valid text is cut at the last character boundary <= max.
                let text = std::str::from_utf8(piece).unwrap();
                let best = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap();
                prop_assert_eq!(bytes.len(), best);
            }
        }
    }

    /// The cleaner is exactly the spec: lossy UTF-8 decoding, a leading
    /// byte-order mark dropped, caret notation for C0 and DEL, `<U+XXXX>` for
    /// C1 and bidi controls, U+2028, U+2029, U+FEFF and tag characters.
    #[test]
    fn clean_matches_the_spec_and_is_safe(input in stream()) {
        let out = clean(&input);
        prop_assert_eq!(&out, &model_clean(&input));
        assert_safe(out.as_bytes());
        // Cleaning what is clean changes nothing.
        prop_assert!(is_clean(out.as_bytes()));
        prop_assert_eq!(clean(out.as_bytes()), out.clone());
        // is_clean says exactly whether the input comes out unchanged.
        prop_assert_eq!(is_clean(&input), out.as_bytes() == &input[..]);
        // cleaned_len says exactly how long the output is.
        prop_assert_eq!(cleaned_len(&input), out.len());
    }

    /// A byte-order mark in front of any text is dropped, and only that one:
    /// a second one is the first character of the text, and shown.
    #[test]
    fn a_leading_byte_order_mark_is_dropped(input in stream()) {
        let mut marked = "\u{FEFF}".as_bytes().to_vec();
        marked.extend_from_slice(&input);
        let out = clean(&marked);
        prop_assert_eq!(&out, &model_clean(&marked));
        prop_assert_eq!(cleaned_len(&marked), out.len());
        if input.starts_with("\u{FEFF}".as_bytes()) {
            prop_assert!(out.starts_with("<U+FEFF>"));
        } else {
            prop_assert_eq!(out, clean(&input));
        }
    }

    /// Arbitrary bytes (not only the pieces above) never make it panic or
    /// leak a control.
    #[test]
    fn clean_of_random_bytes_is_safe(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let out = clean(&input);
        prop_assert_eq!(&out, &model_clean(&input));
        assert_safe(out.as_bytes());
        prop_assert_eq!(cleaned_len(&input), out.len());
    }

    /// `clean_into` appends: what was in the buffer stays, the rest is the
    /// cleaned text.
    #[test]
    fn clean_into_appends(prefix in "[ -~]{0,20}", input in stream()) {
        let mut out = prefix.clone().into_bytes();
        clean_into(&mut out, &input);
        prop_assert!(out.starts_with(prefix.as_bytes()));
        let cleaned = clean(&input);
        prop_assert_eq!(&out[prefix.len()..], cleaned.as_bytes());
        prop_assert_eq!(out.len() - prefix.len(), cleaned_len(&input));
    }

    /// Honest text in any script, without the dangerous controls, passes
    /// unchanged (ZWJ and ZWNJ included); with one of them, it does not.
    #[test]
    fn valid_text_without_controls_is_unchanged(text in any::<String>(), joiner in 0usize..64) {
        let mut honest: String = text.chars().filter(|&c| !is_dangerous(c)).collect();
        // A ZWJ or ZWNJ somewhere, to be sure they pass.
        let at = (0..=honest.len()).filter(|&i| honest.is_char_boundary(i)).nth(joiner);
        if let Some(at) = at {
            honest.insert(at, if joiner % 2 == 0 { '\u{200D}' } else { '\u{200C}' });
        }
        prop_assert_eq!(clean(honest.as_bytes()), honest.clone());
        prop_assert!(is_clean(honest.as_bytes()));
        prop_assert_eq!(cleaned_len(honest.as_bytes()), honest.len());
        prop_assert_eq!(is_clean(text.as_bytes()), !text.chars().any(is_dangerous));
    }

    /// What the server broadcasts: every framed line, cleaned and formatted as
    /// `<who>: <text>\n`, holds exactly one `\n`, at its end, and is safe.
    #[test]
    fn a_formatted_chat_line_has_one_newline_at_the_end(
        input in stream(),
        points in proptest::collection::vec(any::<usize>(), 0..8),
        max in 16usize..64,
    ) {
        for (_, line) in frames(split_at_points(&input, &points), max) {
            let mut out = b"127.0.0.1:40000: ".to_vec();
            clean_into(&mut out, &line);
            out.push(b'\n');
            prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert_eq!(out.last(), Some(&b'\n'));
            assert_safe(&out[..out.len() - 1]);
        }
    }
}

/// Examples from the spec, so a reader sees concrete output next to the
/// properties.
#[test]
fn spec_examples() {
    assert_eq!(clean(b"\x1b[2J"), "^[[2J");
    assert_eq!(clean(b"\x1b]0;owned\x07"), "^[]0;owned^G");
    assert_eq!(clean(b"\rAlice: fake"), "^MAlice: fake");
    assert_eq!(clean("\u{9b}31m".as_bytes()), "<U+009B>31m");
    assert_eq!(clean(b"\x9b31m"), "\u{FFFD}31m");
    assert_eq!(clean("\u{202E}txt.exe".as_bytes()), "<U+202E>txt.exe");
    assert_eq!(clean(b"\x00\xff\x7f"), "^@\u{FFFD}^?");
    assert_eq!(clean(b"\xff\xfb\x01"), "\u{FFFD}\u{FFFD}^A");
    assert_eq!(clean("a\u{2028}b".as_bytes()), "a<U+2028>b");
    assert_eq!(clean("\u{FEFF}hi\u{FEFF}".as_bytes()), "hi<U+FEFF>");
    assert_eq!(clean("\u{E0041}\u{E007F}".as_bytes()), "<U+E0041><U+E007F>");
    assert_eq!(clean("👩\u{200D}💻".as_bytes()), "👩\u{200D}💻");
    assert_eq!(
        frames([&b"a\r\nb\rc\r\n\r\n\r\r\nlast\r"[..]], 100),
        vec![
            (false, b"a".to_vec()),
            (false, b"b\rc".to_vec()),
            (false, b"".to_vec()),
            (false, b"\r".to_vec()),
            (false, b"last".to_vec()),
        ]
    );
}

/// "A large max" must really mean any max: `--max-line` accepts any byte
/// count up to `usize::MAX`, and the framer looks `max + 2` bytes ahead.
/// Computed plainly, that overflowed for `max >= usize::MAX - 1`: a panic
/// in debug builds and, in release builds (which wrap, and abort on panic),
/// an out-of-bounds index in `cut` on the first byte a client sent, so one
/// connection brought the daemon down. A regression test.
#[test]
fn a_max_near_usize_max_does_not_overflow() {
    for max in [usize::MAX, usize::MAX - 1] {
        assert_eq!(
            frames([&b"hi\r\nthere"[..]], max),
            vec![(false, b"hi".to_vec()), (false, b"there".to_vec())],
            "max = {max}"
        );
    }
}
