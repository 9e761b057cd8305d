//! Which names may be taken, and when two names are one or look alike.
//!
//! A name is what the room sees instead of an address, so it must not pass
//! for someone else's. Without these rules, four things would let it: other
//! scripts' look-alike letters (`аlice` with a Cyrillic `а`), compatibility
//! forms that fold to the same letters (`ａｌｉｃｅ`, `𝖺𝗅𝗂𝖼𝖾`, `aⅼice`),
//! invisible characters that print as nothing (`ㅤ`, U+3164), and the same
//! text typed in a different normalisation form. So:
//!
//! - A name is normalised to NFC first: what is checked, stored and shown is
//!   the composed form (`jose` + U+0301 becomes `josé`).
//! - [`parse_name`] checks everything that does not depend on who is
//!   present: length, characters, no invisible ones.
//! - Two names are *the same* if their [`name_key`]s are equal: NFKC with
//!   full case folding, so case, compatibility forms and `ß`/`ss` do not
//!   matter.
//! - Two names *look alike* if their [`name_skeleton`]s are equal: the
//!   confusable skeleton of Unicode TS #39 computed from the key, which maps
//!   each character to a prototype it can be mistaken for.
//! - [`check_single_script`] keeps a name to one script (plus digits and
//!   `_ - .`), which also rules out look-alikes of names nobody holds yet
//!   that borrow some letters from another script (`pаypal`). A name all in
//!   another script (`раураӏ`) passes it, and is refused only while the name
//!   it imitates is present.
//!
//! The data comes from the unicode-rs crates (`unicode-normalization`,
//! `caseless`, `unicode-security`, `unicode-script`), not from tables here.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_script::{Script, UnicodeScript};
use unicode_security::{MixedScript, skeleton};

pub use crate::limits::MAX_NAME_CHARS;

/// Canonical decomposition maps one character to at most this many, so NFC
/// text has at least a quarter as many characters as the text it came from.
/// A test below checks the bound against the whole of Unicode.
const MAX_DECOMPOSITION: usize = 4;

/// A requested name that passed every rule that does not depend on who is
/// present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The NFC form, shown to people.
    pub display: String,
    /// The exact-identity key: NFKC with full case folding ([`name_key`]).
    pub key: String,
    /// The UTS #39 skeleton of `key`, for look-alike detection
    /// ([`name_skeleton`]).
    pub skeleton: String,
}

/// Checks a requested name's own form: valid UTF-8, not empty, at most
/// [`MAX_NAME_CHARS`] characters after NFC, no invisible character, a letter
/// first, then only letters, combining marks, digits, `_`, `-` and `.`.
///
/// On failure, returns the reason shown after `*** invalid name: NAME (`.
pub fn parse_name(raw: &[u8]) -> Result<Name, String> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("not valid UTF-8".into());
    };
    if text.is_empty() {
        return Err("empty".into());
    }
    let too_long = || format!("longer than {MAX_NAME_CHARS} characters");
    // Normalising an endless line would be wasted work: past this many
    // characters, no NFC form is short enough.
    if text
        .chars()
        .nth(MAX_NAME_CHARS * MAX_DECOMPOSITION)
        .is_some()
    {
        return Err(too_long());
    }
    let display: String = text.nfc().collect();
    if display.chars().count() > MAX_NAME_CHARS {
        return Err(too_long());
    }
    // Invisible characters first, so `<ZWSP>alice` is refused for what it
    // holds rather than for not starting with a letter.
    if let Some(c) = display.chars().find(|&c| is_invisible(c)) {
        return Err(format!("invisible character U+{:04X}", c as u32));
    }
    let mut chars = display.chars();
    let first = chars.next().expect("NFC of non-empty text is not empty");
    if !first.is_alphabetic() || is_combining_mark(first) {
        return Err("must start with a letter".into());
    }
    if !chars.all(|c| c.is_alphanumeric() || is_combining_mark(c) || matches!(c, '_' | '-' | '.')) {
        return Err("only letters, digits, _ - . allowed".into());
    }
    let key = name_key(&display);
    let skeleton = name_skeleton(&key);
    if looks_like_an_address(&skeleton) {
        return Err("looks like an address".into());
    }
    Ok(Name {
        display,
        key,
        skeleton,
    })
}

/// Checks that a name is written in one script: its letters' scripts
/// (digits and marks of a script count as that script) must have one in
/// common, where Common and Inherited characters (ASCII digits, `_ - .`,
/// most combining marks) go with any script and Han goes with Hiragana and
/// Katakana (Japanese), Hangul (Korean) and Bopomofo, as UTS #39 says.
///
/// On failure, returns the reason shown after `*** invalid name: NAME (`,
/// such as `mixes scripts: Cyrillic and Latin`.
pub fn check_single_script(name: &Name) -> Result<(), String> {
    if name.display.as_str().is_single_script() {
        return Ok(());
    }
    let mut scripts: Vec<String> = name
        .display
        .chars()
        .map(|c| c.script())
        .filter(|&s| !matches!(s, Script::Common | Script::Inherited | Script::Unknown))
        .map(|s| s.full_name().to_string())
        .collect();
    scripts.sort_unstable();
    scripts.dedup();
    if scripts.len() < 2 {
        // A Common character that belongs to a few scripts only (the
        // Japanese long-vowel mark `ー`, the Arabic tatweel) clashes with
        // the rest: name it by the scripts it belongs to.
        for c in name.display.chars() {
            let ext = c.script_extension();
            if matches!(c.script(), Script::Common | Script::Inherited)
                && !ext.is_common()
                && !ext.is_inherited()
            {
                let names: Vec<&str> = ext.iter().map(Script::full_name).collect();
                scripts.push(names.join("/"));
            }
        }
        scripts.sort_unstable();
        scripts.dedup();
    }
    Err(format!("mixes scripts: {}", and_list(&scripts)))
}

/// The key two names are the same by: compatibility caseless matching
/// (Unicode ch. 3.13, D146: NFKD of full case folding, twice, after NFD),
/// recomposed so it is NFKC. Case does not matter, nor compatibility
/// variants: `Alice`, `ALICE`, `ａｌｉｃｅ`, `𝖺𝗅𝗂𝖼𝖾` and `aⅼice` share a key,
/// as do `straße` and `STRASSE`, `ſam` and `Sam`, `οδος` and `ΟΔΟΣ`, `Kelvin`
/// with a Kelvin sign and `kelvin`. Any text has a key: lookups by name
/// (`/msg`) use it on whatever was typed.
pub fn name_key(name: &str) -> String {
    name.chars()
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkd()
        .nfc()
        .collect()
}

/// The UTS #39 confusable skeleton of a [`name_key`]: two names whose
/// skeletons are equal can be mistaken for each other (`аlice` in Cyrillic
/// and `alice`, `alіce` with a Ukrainian `і`, `rnary` and `mary`).
pub fn name_skeleton(key: &str) -> String {
    skeleton(key).collect()
}

/// True for characters that print as nothing, or as blank, and so must not
/// be in a name: every Default_Ignorable_Code_Point (ZWJ, ZWNJ, zero-width
/// space, variation selectors, U+FEFF, the Hangul fillers U+3164, U+FFA0,
/// U+115F, U+1160, tags…), which the UTS #39 skeleton drops and so maps to
/// nothing, and characters that are not spaces themselves but whose
/// skeleton is only spaces, such as the braille blank U+2800. ZWJ and ZWNJ
/// stay in chat text, where scripts need them; a name is an identity, and a
/// joiner in it would make two names that look the same but differ.
fn is_invisible(c: char) -> bool {
    let mut buf = [0; 4];
    let mut shown = skeleton(c.encode_utf8(&mut buf));
    match shown.next() {
        None => true,
        Some(first) => {
            !c.is_whitespace() && first.is_whitespace() && shown.all(char::is_whitespace)
        }
    }
}

/// True if a name's skeleton could pass for an address identity such as
/// `127.0.0.1:4000` or `[::1]:4000`, which every unnamed client has: a `:`
/// followed only by look-alikes of digits (the skeleton turns `0` into `O`
/// and `1` into `l`). A name never holds a `:`, so its skeleton has one
/// only when a letter imitates it (the modifier letter `ː`, the Lisu tone
/// letter `ꓽ`); with a letter that imitates `1` (the Lisu `ꓲ`) in front,
/// `ꓲ27.0.0.1ː4000` would otherwise be taken and look like an unnamed
/// client's address.
fn looks_like_an_address(skeleton: &str) -> bool {
    skeleton.rsplit_once(':').is_some_and(|(_, port)| {
        !port.is_empty() && port.chars().all(|c| matches!(c, 'O' | 'l' | '2'..='9'))
    })
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Name, String> {
        parse_name(s.as_bytes())
    }

    /// The rule chat.rs applies with `held` present: an equal key or an
    /// equal skeleton is taken.
    fn collides(held: &str, asked: &str) -> bool {
        let held = parse(held).expect("held name is valid");
        let asked = parse(asked).expect("asked name passes parse_name");
        asked.key == held.key || asked.skeleton == held.skeleton
    }

    #[test]
    fn honest_names_in_many_scripts_are_accepted() {
        for ok in [
            "Alice",
            "bob_2",
            "x",
            "Zoë",
            "Łukasz",
            "Дмитрий",
            "名前",
            "Ελένη",
            "Ἀθηνᾶ",
            "مريم",
            "دیدار",
            "שלום",
            "देवनागरी",
            "नमस्ते",
            "हिन्दी",
            "தமிழ்",
            "ไทย",
            "한국어",
            "ひらがなカタカナ漢字",
            "カーン",
            "a.b-c",
            "josé",
            "Ǆemal",
        ] {
            let name = parse(ok).unwrap_or_else(|why| panic!("{ok}: {why}"));
            assert_eq!(name.display, ok);
            assert_eq!(check_single_script(&name), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_decomposed_name_is_accepted_and_shown_composed() {
        let name = parse("jose\u{301}").unwrap();
        assert_eq!(name.display, "jos\u{e9}");
        assert_eq!(name.key, parse("José").unwrap().key);
        // Combining marks in any order that NFC puts right are fine too.
        let name = parse("a\u{323}\u{302}").unwrap();
        assert_eq!(name.display, "\u{1EAD}");
    }

    #[test]
    fn structural_refusals_have_their_reasons() {
        let err = |s: &[u8]| parse_name(s).unwrap_err();
        assert_eq!(err(b""), "empty");
        assert_eq!(err(b"\xff"), "not valid UTF-8");
        assert_eq!(err(b"1abc"), "must start with a letter");
        assert_eq!(err(b"_x"), "must start with a letter");
        assert_eq!(err("\u{301}a".as_bytes()), "must start with a letter");
        assert_eq!(err("\u{93e}".as_bytes()), "must start with a letter");
        assert_eq!(err(b"a b"), "only letters, digits, _ - . allowed");
        assert_eq!(err(b"a:b"), "only letters, digits, _ - . allowed");
        assert_eq!(err(b"a\x1b"), "only letters, digits, _ - . allowed");
        assert_eq!(
            err("a\u{3000}b".as_bytes()),
            "only letters, digits, _ - . allowed"
        );
        assert_eq!(err("a\u{202E}b".as_bytes()), "invisible character U+202E");
    }

    #[test]
    fn length_is_counted_in_characters_after_nfc() {
        assert_eq!(
            parse(&"a".repeat(25)).unwrap_err(),
            "longer than 24 characters"
        );
        assert!(parse(&"名".repeat(24)).is_ok());
        assert!(parse(&"é".repeat(24)).is_ok());
        // 48 characters typed, 24 after composing.
        assert!(parse(&"e\u{301}".repeat(24)).is_ok());
        // Endless input is refused without being normalised.
        assert_eq!(
            parse(&"e\u{301}".repeat(100_000)).unwrap_err(),
            "longer than 24 characters"
        );
    }

    #[test]
    fn blank_fillers_and_invisible_characters_are_refused() {
        for (name, c) in [
            ("\u{3164}", 0x3164),
            ("\u{FFA0}", 0xFFA0),
            ("\u{115F}", 0x115F),
            ("\u{1160}", 0x1160),
            ("bob\u{3164}", 0x3164),
            ("\u{2800}", 0x2800),
            ("a\u{2800}b", 0x2800),
            ("\u{200B}alice", 0x200B),
            ("al\u{200D}ice", 0x200D),
            ("al\u{200C}ice", 0x200C),
            ("ali\u{AD}ce", 0xAD),
            ("alice\u{FEFF}", 0xFEFF),
            ("alice\u{2060}", 0x2060),
            ("a\u{34F}lice", 0x34F),
            ("alice\u{FE0F}", 0xFE0F),
            ("alice\u{E0100}", 0xE0100),
            ("alice\u{E0041}", 0xE0041),
            ("a\u{180E}", 0x180E),
            ("ក\u{17B4}", 0x17B4),
        ] {
            assert_eq!(
                parse(name).unwrap_err(),
                format!("invisible character U+{c:04X}"),
                "{name:?}"
            );
        }
    }

    #[test]
    fn look_alikes_of_alice_collide_with_alice() {
        for asked in [
            "аlice",      // Cyrillic а
            "alіce",      // Ukrainian і
            "ａｌｉｃｅ", // fullwidth
            "𝖺𝗅𝗂𝖼𝖾",      // mathematical sans-serif
            "aⅼice",      // small roman numeral fifty
            "ALICE",      // case
            "Alice",      // case
            "аӏісе",      // all Cyrillic: а, palochka ӏ, і, с, е
        ] {
            assert!(collides("alice", asked), "{asked} passes for alice");
        }
        for asked in ["alicia", "alice2", "bob", "malice"] {
            assert!(!collides("alice", asked), "{asked} is not alice");
        }
        // A known limit of comparing skeletons of case-folded keys: a capital
        // `I` folds to `i` before the skeleton could map it to `l`, so `aIice`
        // does not collide with `alice`. Terminal fonts draw `I` and `l`
        // apart, and the spec asks for the skeleton of the folded key.
        assert!(!collides("alice", "aIice"));
        // Look-alikes of other shapes, across scripts.
        assert!(collides("mary", "rnary"));
        assert!(collides("paypal", "раураӏ"));
        // All Cyrillic, so one script: only a present `paypal` keeps it out.
        assert_eq!(check_single_script(&parse("раураӏ").unwrap()), Ok(()));
        // A visible accent is a difference, not a look-alike.
        assert!(!collides("Όλγα", "Ολγα"));
        assert!(collides("scope", "ѕсоре"));
    }

    #[test]
    fn skeleton_is_of_the_key_so_case_and_width_do_not_hide_a_look_alike() {
        let a = parse("ALICE").unwrap();
        let b = parse("АLICE").unwrap(); // Cyrillic capital А
        assert_ne!(a.key, b.key);
        assert_eq!(a.skeleton, b.skeleton);
        assert_eq!(parse("ａｌｉｃｅ").unwrap().display, "ａｌｉｃｅ");
    }

    #[test]
    fn a_name_that_looks_like_an_address_is_refused() {
        // Lisu letter `ꓲ` for 1, modifier letter `ː` for the colon.
        for fake in ["ꓲ27.0.0.1ː4000", "ꓲ0.0.0.2ː5", "aꓽ8000", "bː1"] {
            assert_eq!(parse(fake).unwrap_err(), "looks like an address", "{fake}");
        }
        // A colon look-alike followed by letters is no port.
        for ok in ["ꓡꓲꓽꓢꓴ", "aːb", "aː"] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        assert!(!looks_like_an_address(&name_skeleton("[::1]")));
        assert!(looks_like_an_address(&name_skeleton("127.0.0.1:4000")));
        assert!(looks_like_an_address(&name_skeleton("[::1]:50000")));
    }

    #[test]
    fn mixed_scripts_are_refused_and_named() {
        let err = |s: &str| check_single_script(&parse(s).unwrap()).unwrap_err();
        assert_eq!(err("аlice"), "mixes scripts: Cyrillic and Latin");
        assert_eq!(err("alіce"), "mixes scripts: Cyrillic and Latin");
        assert_eq!(err("bobβ"), "mixes scripts: Greek and Latin");
        assert_eq!(err("aбγ"), "mixes scripts: Cyrillic, Greek and Latin");
        assert_eq!(err("名前abc"), "mixes scripts: Han and Latin");
        // Digits of another script count as that script.
        assert_eq!(err("bob१"), "mixes scripts: Devanagari and Latin");
        // A Common character of a few scripts only is named by them.
        assert_eq!(err("abcー"), "mixes scripts: Hiragana/Katakana and Latin");
        // ASCII digits, `_ - .` and combining marks go with any script.
        for ok in [
            "Дмитрий_2",
            "名前-3.1",
            "ひらがな漢字",
            "한국어漢字",
            "e\u{301}",
        ] {
            assert_eq!(check_single_script(&parse(ok).unwrap()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn the_key_keeps_the_old_folding_guarantees() {
        let key = |s: &str| name_key(s);
        assert_eq!(key("ÄLICE"), key("älice"));
        assert_eq!(key("ſam"), key("Sam"));
        assert_eq!(key("οδοσ"), key("ΟΔΟΣ"));
        assert_eq!(key("οδος"), key("ΟΔΟΣ"));
        assert_eq!(key("Straße"), key("STRASSE"));
        assert_eq!(key("STRAẞE"), key("straße"));
        assert_eq!(key("\u{212A}elvin"), key("kelvin"));
        assert_eq!(key("jose\u{301}"), key("JOSÉ"));
        assert_eq!(key("ﬁsh"), key("FISH"));
        assert_ne!(key("alice"), key("alicia"));
        // The key is stable: folding a key changes nothing.
        for s in ["Straße", "ΟΔΟΣ", "ǅemal", "ａｌｉｃｅ", "İstanbul", "ᾂ"] {
            assert_eq!(key(&key(s)), key(s), "{s}");
        }
    }

    #[test]
    fn and_list_reads_as_english() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(and_list(&v(&[])), "");
        assert_eq!(and_list(&v(&["a"])), "a");
        assert_eq!(and_list(&v(&["a", "b"])), "a and b");
        assert_eq!(and_list(&v(&["a", "b", "c"])), "a, b and c");
    }

    /// The bound `parse_name` uses to skip normalising long input.
    #[test]
    fn no_character_decomposes_into_more_than_four() {
        let longest = (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .map(|c| std::iter::once(c).nfd().count())
            .max();
        assert_eq!(longest, Some(MAX_DECOMPOSITION));
    }
}
