//! What a line starting with `/` asks for.
//!
//! Parsing is separate from doing, so every command's syntax is tested here
//! without a socket. Which names are allowed is `names.rs`'s business.

/// A parsed input line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// An ordinary chat line (including `//text`, which sends `/text`).
    Say(&'a [u8]),
    /// `/nick NAME`
    Nick(&'a [u8]),
    /// `/who`, or `/who #ROOM` for another room (other words are ignored).
    Who(Option<&'a [u8]>),
    /// `/join #ROOM`
    Join(&'a [u8]),
    /// `/rooms`
    Rooms,
    /// `/topic`, or `/topic TEXT` to set it.
    Topic(Option<&'a [u8]>),
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
    "***   /who [#ROOM]     list who is here (or in #ROOM)",
    "***   /join #ROOM      move to #ROOM (made if needed)",
    "***   /rooms           list the rooms",
    "***   /topic [TEXT]    show or set this room's topic",
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
        b"who" => Command::Who(args.starts_with(b"#").then(|| split_word(args).0)),
        b"join" if args.is_empty() => Command::Usage("/join #ROOM"),
        b"join" => Command::Join(args),
        b"rooms" => Command::Rooms,
        b"topic" => Command::Topic((!args.is_empty()).then_some(args)),
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
        assert_eq!(parse(b"/who"), Command::Who(None));
        assert_eq!(parse(b"/who everyone"), Command::Who(None));
        assert_eq!(parse(b"/who #help now"), Command::Who(Some(b"#help")));
        assert_eq!(parse(b"/join #help"), Command::Join(b"#help"));
        assert_eq!(parse(b"/join"), Command::Usage("/join #ROOM"));
        assert_eq!(parse(b"/rooms"), Command::Rooms);
        assert_eq!(parse(b"/topic"), Command::Topic(None));
        assert_eq!(
            parse(b"/topic  tea at 4 "),
            Command::Topic(Some(b"tea at 4"))
        );
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
        assert_eq!(parse(b"/who "), Command::Who(None));
        assert_eq!(parse(b"/me\t\twaves"), Command::Me(b"waves"));
        assert_eq!(parse(b"/nick\t"), Command::Usage("/nick NAME"));
    }
}
