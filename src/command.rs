//! What a line starting with `/` asks for, and which names are allowed.
//!
//! Parsing is separate from doing, so every command's syntax and every
//! refusal reason is tested here without a socket.

/// A parsed input line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// An ordinary chat line (including `//text`, which sends `/text`).
    Say(&'a [u8]),
    /// `/nick NAME`
    Nick(&'a [u8]),
    /// `/who`
    Who,
    /// `/me TEXT`
    Me(&'a [u8]),
    /// `/msg NAME TEXT`
    Msg { to: &'a [u8], text: &'a [u8] },
    /// `/quit [REASON]`
    Quit(Option<&'a [u8]>),
    /// `/stats`
    Stats,
    /// `/help`
    Help,
    /// A known command with missing arguments: the usage to show.
    Usage(&'static str),
    /// `/x` for an unknown `x`: the word as typed, for the error line.
    Unknown(&'a [u8]),
}

/// The text `/help` sends, one line per command.
pub const HELP: &[&str] = &[
    "*** commands:",
    "***   /nick NAME       take a name",
    "***   /who             list who is here",
    "***   /me TEXT         send an action: * you TEXT",
    "***   /msg NAME TEXT   send TEXT to NAME only",
    "***   /quit [REASON]   leave",
    "***   /stats           show queue and server counters",
    "***   /help            this list",
    "***   //text           send a line that starts with /",
];

/// Reads one input line (already stripped of its line ending).
pub fn parse(line: &[u8]) -> Command<'_> {
    let Some(rest) = line.strip_prefix(b"/") else {
        return Command::Say(line);
    };
    if rest.starts_with(b"/") {
        return Command::Say(rest);
    }
    // The command word is the bytes right after the `/`, up to the first
    // space or tab, with nothing trimmed before it: `/ quit smoking` has the
    // empty word and is an unknown command, not `/quit` with a reason.
    let (word, args) = match rest.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&rest[..i], trim(&rest[i + 1..])),
        None => (rest, &b""[..]),
    };
    match word.to_ascii_lowercase().as_slice() {
        b"nick" if args.is_empty() => Command::Usage("/nick NAME"),
        b"nick" => Command::Nick(args),
        b"who" => Command::Who,
        b"me" if args.is_empty() => Command::Usage("/me TEXT"),
        b"me" => Command::Me(args),
        b"msg" => match split_word(args) {
            (b"", _) => Command::Usage("/msg NAME TEXT"),
            (_, text) if trim(text).is_empty() => Command::Usage("/msg NAME TEXT"),
            (to, text) => Command::Msg {
                to,
                text: trim(text),
            },
        },
        b"quit" => Command::Quit((!args.is_empty()).then_some(args)),
        b"stats" => Command::Stats,
        b"help" => Command::Help,
        _ => Command::Unknown(word),
    }
}

/// Splits off the first space-separated word.
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    let s = trim(s);
    match s.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, b""),
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    match start {
        None => b"",
        Some(start) => {
            let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').unwrap();
            &s[start..=end]
        }
    }
}

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 24;

/// Checks a requested name. On success returns it as a string; on failure, the
/// reason to show after `*** invalid name: NAME`.
pub fn validate_name(raw: &[u8]) -> Result<&str, &'static str> {
    let Ok(name) = std::str::from_utf8(raw) else {
        return Err("not valid UTF-8");
    };
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("empty");
    };
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("longer than 24 characters");
    }
    if !first.is_alphabetic() {
        return Err("must start with a letter");
    }
    if !chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err("only letters, digits, _ - . allowed");
    }
    Ok(name)
}

/// The form names are compared in: two names are the same if they are equal
/// without regard to case. Uppercasing first folds the letters that have more
/// than one lowercase form (`ſ` and `s`, `ς` and `σ`, `ß` and `ss`), which
/// `to_lowercase` alone keeps apart.
pub fn name_key(name: &str) -> String {
    // Lowercasing first also folds `ẞ` (whose uppercase is itself) into `ß`,
    // which the uppercase step then turns into `SS`.
    name.to_lowercase().to_uppercase().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_double_slash_are_said() {
        assert_eq!(parse(b"hello"), Command::Say(b"hello"));
        assert_eq!(parse(b""), Command::Say(b""));
        assert_eq!(parse(b"//etc/passwd"), Command::Say(b"/etc/passwd"));
        assert_eq!(parse(b" /who"), Command::Say(b" /who"));
    }

    #[test]
    fn commands_and_their_arguments() {
        assert_eq!(parse(b"/nick  Alice "), Command::Nick(b"Alice"));
        assert_eq!(parse(b"/NICK Bob"), Command::Nick(b"Bob"));
        assert_eq!(parse(b"/nick a b"), Command::Nick(b"a b"));
        assert_eq!(parse(b"/who"), Command::Who);
        assert_eq!(parse(b"/me waves  hi"), Command::Me(b"waves  hi"));
        assert_eq!(
            parse(b"/msg bob  hi there"),
            Command::Msg {
                to: b"bob",
                text: b"hi there"
            }
        );
        assert_eq!(parse(b"/quit"), Command::Quit(None));
        assert_eq!(
            parse(b"/quit  gone fishing"),
            Command::Quit(Some(b"gone fishing"))
        );
        assert_eq!(parse(b"/stats"), Command::Stats);
        assert_eq!(parse(b"/help"), Command::Help);
    }

    #[test]
    fn missing_arguments_and_unknown_commands() {
        assert_eq!(parse(b"/nick"), Command::Usage("/nick NAME"));
        assert_eq!(parse(b"/me "), Command::Usage("/me TEXT"));
        assert_eq!(parse(b"/msg bob"), Command::Usage("/msg NAME TEXT"));
        assert_eq!(parse(b"/msg"), Command::Usage("/msg NAME TEXT"));
        assert_eq!(parse(b"/x y"), Command::Unknown(b"x"));
        assert_eq!(parse(b"/"), Command::Unknown(b""));
    }

    #[test]
    fn the_command_word_starts_right_after_the_slash() {
        // A space or tab after the slash makes the word empty: the rest is
        // never taken for a command, whatever it says.
        assert_eq!(parse(b"/ quit smoking is hard"), Command::Unknown(b""));
        assert_eq!(parse(b"/ quit"), Command::Unknown(b""));
        assert_eq!(parse(b"/\tnick bob"), Command::Unknown(b""));
        assert_eq!(parse(b"/  who"), Command::Unknown(b""));
        assert_eq!(parse(b"/ "), Command::Unknown(b""));
        // The word ends at the first space or tab, and the arguments are
        // still trimmed on both sides.
        assert_eq!(parse(b"/quit\tgone "), Command::Quit(Some(b"gone")));
        assert_eq!(parse(b"/who "), Command::Who);
        assert_eq!(parse(b"/me\t\twaves"), Command::Me(b"waves"));
        assert_eq!(parse(b"/nick\t"), Command::Usage("/nick NAME"));
    }

    #[test]
    fn names() {
        for ok in [
            "Alice",
            "bob_2",
            "x",
            "Zoë",
            "Łukasz",
            "Дмитрий",
            "名前",
            "a.b-c",
        ] {
            assert_eq!(validate_name(ok.as_bytes()), Ok(ok));
        }
        assert_eq!(validate_name(b""), Err("empty"));
        assert_eq!(validate_name(b"1abc"), Err("must start with a letter"));
        assert_eq!(validate_name(b"_x"), Err("must start with a letter"));
        assert_eq!(
            validate_name(b"a b"),
            Err("only letters, digits, _ - . allowed")
        );
        assert_eq!(
            validate_name(b"a\x1b"),
            Err("only letters, digits, _ - . allowed")
        );
        assert_eq!(validate_name(b"\xff"), Err("not valid UTF-8"));
        let long = "a".repeat(25);
        assert_eq!(
            validate_name(long.as_bytes()),
            Err("longer than 24 characters")
        );
        assert!(validate_name("é".repeat(24).as_bytes()).is_ok());
        assert_eq!(name_key("ÄLICE"), name_key("älice"));
        assert_eq!(name_key("ſam"), name_key("Sam"));
        assert_eq!(name_key("οδοσ"), name_key("ΟΔΟΣ"));
        assert_eq!(name_key("Straße"), name_key("STRASSE"));
        assert_eq!(name_key("STRAẞE"), name_key("straße"));
        assert_eq!(name_key("\u{212A}elvin"), name_key("kelvin"));
        assert_ne!(name_key("alice"), name_key("alicia"));
    }
}
