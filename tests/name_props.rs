//! Property tests for the name rules (`natter::names`): whatever bytes are
//! offered as a name, `parse_name` never panics, and what it accepts keeps
//! every promise of `model::check_name`; look-alikes of a name share its
//! skeleton. Like `tests/clean_props.rs`: modest case counts, no failure
//! persistence files.

use natter::names::{check_single_script, name_key, name_skeleton, parse_name};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

mod model;

use model::{CONFUSABLES, check_name};

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters that make name checks interesting: letters of several
/// scripts and their look-alikes, compatibility forms, combining marks (to
/// compose and reorder), case-folding specials, the allowed punctuation,
/// invisible and blank characters, controls and spaces.
const PALETTE: &[char] = &[
    'a',
    'b',
    'c',
    'e',
    'i',
    'l',
    'o',
    's',
    'A',
    'I',
    'K',
    'S',
    'Z',
    '0',
    '7',
    '_',
    '-',
    '.',
    ' ',
    ':',
    '\t',
    '\u{1b}',
    '\u{7f}', // ASCII that is refused
    'é',
    'ë',
    'ß',
    'ẞ',
    'ſ',
    'ς',
    'σ',
    'Σ',
    'İ',
    'ı',
    'ǅ',
    'ﬁ',
    '\u{212A}', // folding
    'а',
    'е',
    'о',
    'і',
    'ӏ',
    'Д',
    'ж', // Cyrillic
    'ο',
    'ν',
    'Ω',
    'ά', // Greek
    '名',
    '前',
    'ひ',
    'カ',
    'ー',
    '한',
    'ᄀ',
    'ᅡ',
    'ᆨ', // CJK, Hangul, jamo
    'न',
    'म',
    'स',
    'त',
    '\u{94D}',
    '\u{93E}',
    '\u{93C}',
    '१', // Devanagari
    'م',
    'ر',
    '\u{640}',
    '٣', // Arabic, tatweel, digit
    'ａ',
    'Ａ',
    '𝖺',
    'ⅼ',
    '①',
    '²', // compatibility forms
    '\u{301}',
    '\u{308}',
    '\u{323}',
    '\u{345}',
    '\u{20DD}', // combining marks
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{AD}',
    '\u{FEFF}',
    '\u{2060}',
    '\u{FE0F}', // invisible
    '\u{3164}',
    '\u{FFA0}',
    '\u{115F}',
    '\u{1160}',
    '\u{2800}',
    '\u{3000}',
    '\u{A0}', // blanks
    '\u{202E}',
    '\u{2066}',
    '\u{E0041}',
    '\u{E0100}',
    '\u{85}',
    '\u{2028}', // controls, tags
];

/// Cased letters for `case_never_makes_another_name`.
const CASED: &[char] = &[
    'a', 'A', 'k', 'K', '\u{212A}', 's', 'S', 'ſ', 'ß', 'ẞ', 'é', 'É', 'ǅ', 'ǆ', 'Ǆ', 'ﬁ', 'σ',
    'ς', 'Σ', 'ά', 'Ά', 'ω', 'Ω', 'д', 'Д', 'ж', 'Ж', 'ё', 'Ё', '2',
];

/// A string of up to `max` palette characters.
fn palette_name(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0..PALETTE.len(), 0..=max)
        .prop_map(|ix| ix.into_iter().map(|i| PALETTE[i]).collect())
}

/// An ASCII name that `parse_name` accepts and that is written in Latin.
fn latin_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,15}"
}

proptest! {
    #![proptest_config(cases(1024))]

    /// Any bytes at all: no panic, and every promise holds.
    #[test]
    fn any_bytes_keep_the_name_promises(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_name(&raw);
    }

    /// Any valid UTF-8, of any script.
    #[test]
    fn any_text_keeps_the_name_promises(text in "\\PC{0,30}") {
        check_name(text.as_bytes());
    }

    /// Mixes of the palette, where accepted names are common.
    #[test]
    fn palette_names_keep_the_name_promises(text in palette_name(12)) {
        check_name(text.as_bytes());
    }

    /// Long inputs are refused without being normalised, and never panic.
    #[test]
    fn long_names_are_refused(text in palette_name(200)) {
        check_name(text.as_bytes());
        if text.chars().count() > 24 * 4 {
            prop_assert_eq!(
                parse_name(text.as_bytes()),
                Err("longer than 24 characters".to_string())
            );
        }
    }

    /// Replacing one letter of a name by a look-alike (another script's
    /// letter or a compatibility form) keeps its skeleton: with the first
    /// name present, the second is taken. When other Latin letters remain,
    /// the result also mixes scripts.
    #[test]
    fn a_look_alike_letter_keeps_the_skeleton(
        // The first letter always has a look-alike in the table.
        name in "[acdeghijlmnopqstuvwxy][a-z0-9_.-]{0,15}",
        pick in any::<prop::sample::Index>(),
    ) {
        let original = parse_name(name.as_bytes()).expect("a plain Latin name is valid");
        prop_assert_eq!(check_single_script(&original), Ok(()));
        let chars: Vec<char> = name.chars().collect();
        let spots: Vec<(usize, char)> = chars
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| {
                CONFUSABLES.iter().filter(move |&&(l, _)| l == c).map(move |&(_, f)| (i, f))
            })
            .collect();
        let (at, fake) = spots[pick.index(spots.len())];
        let mut forged = chars.clone();
        forged[at] = fake;
        let forged: String = forged.into_iter().collect();
        check_name(forged.as_bytes());
        let look_alike = parse_name(forged.as_bytes()).expect("the forgery passes parse_name");
        prop_assert_eq!(&look_alike.skeleton, &original.skeleton, "{} vs {}", forged, name);
        // Whether it is also a mix of scripts depends on the fake's script
        // and on what else is in the name.
        let fake_is_latin = matches!(fake, 'ɡ' | 'ⅿ' | '𝐭' | 'ａ');
        let other_latin = chars
            .iter()
            .enumerate()
            .any(|(i, c)| i != at && c.is_ascii_alphabetic());
        prop_assert_eq!(
            check_single_script(&look_alike).is_err(),
            !fake_is_latin && other_latin,
            "{}", forged
        );
    }

    /// Case never makes another name, for letters whose case mappings are
    /// sound for identity: the specials the key must fold (`ß`/`ẞ`/`ss`, `ſ`,
    /// final `ς`, the Kelvin sign, titlecase `ǅ`, the ligature `ﬁ`) among
    /// plain Latin, Greek and Cyrillic letters.
    #[test]
    fn case_never_makes_another_name(
        ix in proptest::collection::vec(0..CASED.len(), 1..12),
    ) {
        let text: String = ix.into_iter().map(|i| CASED[i]).collect();
        check_name(text.as_bytes());
        let key = name_key(&text);
        prop_assert_eq!(name_key(&text.to_lowercase()), key.clone());
        prop_assert_eq!(name_key(&text.to_uppercase()), key.clone());
        let skeleton = name_skeleton(&key);
        prop_assert_eq!(name_skeleton(&name_key(&text.to_uppercase())), skeleton);
    }

    /// The key ignores case and compatibility width: a name in fullwidth
    /// capitals has the key of its ASCII lowercase.
    #[test]
    fn fullwidth_capitals_share_the_key(name in latin_name()) {
        let wide: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' => char::from_u32(c as u32 - 'a' as u32 + 0xFF21).unwrap(),
                '0'..='9' => char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap(),
                _ => c,
            })
            .collect();
        prop_assert_eq!(name_key(&wide), name_key(&name));
        prop_assert_eq!(name_skeleton(&name_key(&wide)), name_skeleton(&name_key(&name)));
    }
}

/// The repro from the issue, as a plain test beside the properties.
#[test]
fn the_issue_repro() {
    let alice = parse_name(b"alice").unwrap();
    for fake in ["аlice", "alіce", "ａｌｉｃｅ", "𝖺𝗅𝗂𝖼𝖾", "aⅼice"] {
        check_name(fake.as_bytes());
        let name = parse_name(fake.as_bytes()).unwrap();
        assert!(
            name.key == alice.key || name.skeleton == alice.skeleton,
            "{fake} passes for alice"
        );
    }
    for blank in ["\u{3164}", "\u{FFA0}"] {
        assert!(parse_name(blank.as_bytes()).is_err());
    }
    let jose = parse_name("jose\u{301}".as_bytes()).unwrap();
    assert_eq!(jose.display, "jos\u{e9}");
}
