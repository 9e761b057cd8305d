//! Names, presence and commands (issue 5), over real sockets.
//!
//! Every test starts its own server and waits on bytes, never on sleeps. A
//! claim that something was *not* sent is proved by a marker: the next line
//! the client reads is one sent afterwards, so nothing can have come between.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{Client, config, start};
use natter::command::HELP;

// ----- helpers ----------------------------------------------------------------

/// The identity the server gives an unnamed client: its address as Go prints
/// it, which is the client socket's local address.
fn address_of(c: &Client) -> String {
    c.stream().local_addr().unwrap().to_string()
}

/// Connects under `--ask-name` and reads the first prompt.
fn connect_asked(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr);
    c.expect("What is your name?");
    c
}

/// Answers the name prompt with a name that will be accepted.
fn answer(c: &mut Client, name: &str) {
    c.say(name);
    c.expect(&format!("You are {name}"));
    c.who = name.to_string();
}

/// A file under the temp directory with a unique name, removed on drop (also
/// when the test fails).
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, contents: &[u8]) -> TempFile {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "natter-{tag}-{}-{nanos}-{}.txt",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ----- the reference is unchanged -----------------------------------------------

/// With default flags and no command typed, the Go book's lines and nothing
/// else: greeting, arrival to the others, `<addr>: <line>` to all, leaving.
#[test]
fn default_flags_keep_the_reference_transcript() {
    let addr = start(config());
    let mut a = Client::join(addr);
    assert_eq!(a.who, address_of(&a));
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    a.say("Hi!");
    a.expect(&format!("{}: Hi!", a.who));
    b.expect(&format!("{}: Hi!", a.who));
    b.say("Hi yourself.");
    a.expect(&format!("{}: Hi yourself.", b.who));
    b.expect(&format!("{}: Hi yourself.", b.who));

    a.finish_sending();
    assert_eq!(a.read_to_end(), b"", "A got nothing after its last line");
    b.expect(&format!("{} has left", a.who));
    b.finish_sending();
    assert_eq!(b.read_to_end(), b"", "B got nothing after A left");
}

// ----- /nick ----------------------------------------------------------------------

/// Everyone hears the rename; later lines, actions and the leaving use the new
/// name.
#[test]
fn nick_renames_for_everyone_and_later_lines_use_the_new_name() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    let old = a.who.clone();
    a.nick("alice");
    b.expect(&format!("{old} is now known as alice"));

    a.say("hi");
    a.expect("alice: hi");
    b.expect("alice: hi");

    // The command word is case-insensitive; a case change of one's own name
    // is a rename like any other.
    a.say("/NiCk Alice");
    a.expect("alice is now known as Alice");
    b.expect("alice is now known as Alice");
    a.who = "Alice".into();

    a.finish_sending();
    assert_eq!(a.read_to_end(), b"");
    b.expect("Alice has left");
}

/// Letters of any script, digits and `_ - .` after the first letter; up to
/// 24 characters (not bytes).
#[test]
fn nick_accepts_names_in_any_script() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    let cjk24 = "名".repeat(24);
    let accented24 = "é".repeat(24);
    for name in [
        "Дмитрий",
        "名前",
        "Zoë",
        "Łukasz",
        "Ἀθηνᾶ",
        "مريم",
        "a.b-c_9",
        "x",
        &cjk24,
        &accented24,
    ] {
        let old = a.who.clone();
        a.nick(name);
        b.expect(&format!("{old} is now known as {name}"));
    }
    a.say("/who");
    a.expect(&format!("*** 2 here: {accented24}, {}", b.who));
}

/// Every refusal goes to the sender only, and names nothing for the others.
#[test]
fn nick_refusals_go_to_the_sender_only() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    let old_b = b.who.clone();
    b.nick("bob");
    a.expect(&format!("{old_b} is now known as bob"));

    let refusals: &[(&[u8], &str)] = &[
        (b"/nick", "*** usage: /nick NAME"),
        (b"/nick   ", "*** usage: /nick NAME"),
        (
            b"/nick 1abc",
            "*** invalid name: 1abc (must start with a letter)",
        ),
        (
            b"/nick _x",
            "*** invalid name: _x (must start with a letter)",
        ),
        (
            b"/nick a b",
            "*** invalid name: a b (only letters, digits, _ - . allowed)",
        ),
        (
            b"/nick a:b",
            "*** invalid name: a:b (only letters, digits, _ - . allowed)",
        ),
        (
            b"/nick aaaaaaaaaaaaaaaaaaaaaaaaa",
            "*** invalid name: aaaaaaaaaaaaaaaaaaaaaaaaa (longer than 24 characters)",
        ),
        (
            b"/nick \xffx",
            "*** invalid name: \u{FFFD}x (not valid UTF-8)",
        ),
        (b"/nick bob", "*** name taken: bob"),
    ];
    for (line, want) in refusals {
        let mut raw = line.to_vec();
        raw.push(b'\n');
        a.send(raw);
        a.expect(want);
    }
    a.nick("alice");
    b.expect(&format!("{} is now known as alice", address_of(&a)));
    a.say("/nick alice");
    a.expect("*** you are already alice");

    // B saw only the rename: its next line is the marker.
    a.say("marker");
    a.expect("alice: marker");
    b.expect("alice: marker");
}

/// `Alice` and `aLiCe` are one name; so are `Дмитрий` and `ДМИТРИЙ`, `Zoë`
/// and `ZOË`, and pairs that only full case folding joins: `ſ` (long s) and
/// `s`, final `ς` and `σ`, `ẞ` and `ß`. The refusal shows the name as
/// requested.
#[test]
fn names_are_unique_without_regard_to_case() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    for (held, asked) in [
        ("Alice", "aLiCe"),
        ("Дмитрий", "ДМИТРИЙ"),
        ("Zoë", "ZOË"),
        ("Sam", "ſam"),
        ("οδοσ", "ΟΔΟΣ"),
        ("straße", "STRAẞE"),
    ] {
        let old = a.who.clone();
        a.nick(held);
        b.expect(&format!("{old} is now known as {held}"));
        b.say(&format!("/nick {asked}"));
        b.expect(&format!("*** name taken: {asked}"));
        // The lookup by name ignores case too.
        b.say(&format!("/msg {asked} hello"));
        a.expect(&format!("{} (private): hello", b.who));
        b.expect(&format!("-> {held}: hello"));
    }
}

/// With `alice` present, names that would pass for hers are refused: the
/// same letters in another script, compatibility forms that fold to hers,
/// invisible fillers; a name typed decomposed is taken composed; a mix of
/// scripts is refused even when nobody holds its look-alike. The refusals
/// go to the asker only.
#[test]
fn names_that_look_like_another_are_refused() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    let old_a = a.who.clone();
    a.nick("alice");
    b.expect(&format!("{old_a} is now known as alice"));

    for (asked, want) in [
        ("аlice", "*** name taken: аlice (looks like alice)"),
        ("alіce", "*** name taken: alіce (looks like alice)"),
        ("ａｌｉｃｅ", "*** name taken: ａｌｉｃｅ"),
        ("𝖺𝗅𝗂𝖼𝖾", "*** name taken: 𝖺𝗅𝗂𝖼𝖾"),
        ("aⅼice", "*** name taken: aⅼice"),
        (
            "\u{3164}",
            "*** invalid name: \u{3164} (invisible character U+3164)",
        ),
        (
            "\u{FFA0}",
            "*** invalid name: \u{FFA0} (invisible character U+FFA0)",
        ),
        (
            "al\u{200D}ice",
            "*** invalid name: al\u{200D}ice (invisible character U+200D)",
        ),
        (
            "bοb",
            "*** invalid name: bοb (mixes scripts: Greek and Latin)",
        ),
        (
            "ꓲ27.0.0.1ː4000",
            "*** invalid name: ꓲ27.0.0.1ː4000 (looks like an address)",
        ),
    ] {
        b.say(&format!("/nick {asked}"));
        b.expect(want);
    }

    // Decomposed input is taken and shown composed.
    let old_b = b.who.clone();
    b.say("/nick jose\u{301}");
    b.expect(&format!("{old_b} is now known as jos\u{e9}"));
    a.expect(&format!("{old_b} is now known as jos\u{e9}"));
    b.who = "jos\u{e9}".to_string();

    // Alice may take a form of her own name; a look-alike of hers is still
    // refused for mixing scripts.
    a.nick("Alice");
    b.expect("alice is now known as Alice");
    a.say("/nick аlice");
    a.expect("*** invalid name: аlice (mixes scripts: Cyrillic and Latin)");

    // Once she leaves, her look-alikes are free (if they pass on their own).
    a.say("/quit");
    b.expect("Alice has left");
    b.nick("ａｌｉｃｅ");
    b.say("/who");
    b.expect("*** 1 here: ａｌｉｃｅ");
}

/// A name is free again once its holder renames or leaves.
#[test]
fn a_name_is_free_again_after_its_holder_renames_or_leaves() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    a.nick("alice");
    b.until(|l| l.ends_with("is now known as alice"));
    a.nick("alicia");
    b.expect("alice is now known as alicia");
    b.nick("ALICE");
    a.expect(&format!("{} is now known as ALICE", address_of(&b)));

    b.say("/quit");
    a.expect("ALICE has left");
    assert_eq!(b.read_to_end(), b"");
    let mut c = Client::join(addr);
    a.expect(&format!("{} has arrived", c.who));
    c.nick("alice");
    a.expect(&format!("{} is now known as alice", address_of(&c)));
}

// ----- /who -------------------------------------------------------------------------

/// `/who` lists the room in order of arrival (not by name, not by slot: a
/// later client may reuse a departed one's slot), counts it, and goes to the
/// sender only. Clients without a name appear as their address.
#[test]
fn who_lists_everyone_in_order_of_arrival() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    let mut c = Client::join(addr);
    a.expect(&format!("{} has arrived", c.who));
    b.expect(&format!("{} has arrived", c.who));

    b.say("/who");
    b.expect(&format!("*** 3 here: {}, {}, {}", a.who, b.who, c.who));

    // Names sorting differently from arrival.
    let old_c = c.who.clone();
    c.nick("anna");
    a.expect(&format!("{old_c} is now known as anna"));
    b.expect(&format!("{old_c} is now known as anna"));
    let old_b = b.who.clone();
    b.nick("zoe");
    a.expect(&format!("{old_b} is now known as zoe"));
    c.expect(&format!("{old_b} is now known as zoe"));

    // A leaves; D arrives, maybe into A's old slot.
    a.finish_sending();
    assert_eq!(a.read_to_end(), b"");
    b.expect(&format!("{} has left", a.who));
    c.expect(&format!("{} has left", a.who));
    let mut d = Client::join(addr);
    b.expect(&format!("{} has arrived", d.who));
    c.expect(&format!("{} has arrived", d.who));
    let old_d = d.who.clone();
    d.nick("mia");
    b.expect(&format!("{old_d} is now known as mia"));
    c.expect(&format!("{old_d} is now known as mia"));

    d.say("/WHO");
    d.expect("*** 3 here: zoe, anna, mia");

    // Only D got it.
    d.say("marker");
    for x in [&mut b, &mut c, &mut d] {
        x.expect("mia: marker");
    }
}

// ----- /me --------------------------------------------------------------------------

/// `/me TEXT` gives everyone `* <who> TEXT`; without text, a usage line to the
/// sender only.
#[test]
fn me_sends_an_action_to_everyone() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    a.say("/me waves");
    a.expect(&format!("* {} waves", a.who));
    b.expect(&format!("* {} waves", a.who));

    let old = a.who.clone();
    a.nick("alice");
    b.expect(&format!("{old} is now known as alice"));
    a.say("/ME  waves  twice ");
    a.expect("* alice waves  twice");
    b.expect("* alice waves  twice");

    a.say("/me");
    a.expect("*** usage: /me TEXT");
    a.say("/me   ");
    a.expect("*** usage: /me TEXT");
    a.say("marker");
    a.expect("alice: marker");
    b.expect("alice: marker");
}

// ----- /msg -------------------------------------------------------------------------

/// `/msg NAME TEXT`: the target gets `<who> (private): TEXT`, the sender
/// `-> NAME: TEXT` (NAME as the target holds it), nobody else anything.
#[test]
fn msg_reaches_only_its_target() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    let mut c = Client::join(addr);
    a.expect(&format!("{} has arrived", c.who));
    b.expect(&format!("{} has arrived", c.who));
    let old_b = b.who.clone();
    b.nick("bob");
    a.expect(&format!("{old_b} is now known as bob"));
    c.expect(&format!("{old_b} is now known as bob"));

    a.say("/msg BOB  hi  there ");
    b.expect(&format!("{} (private): hi  there", a.who));
    a.expect("-> bob: hi  there");

    a.say("/MSG bob");
    a.expect("*** usage: /msg NAME TEXT");
    a.say("/msg");
    a.expect("*** usage: /msg NAME TEXT");

    // C got nothing; B nothing more.
    a.say("public");
    let want = format!("{}: public", a.who);
    for x in [&mut a, &mut b, &mut c] {
        x.expect(&want);
    }
}

/// A client without a name is addressed by its address-identity.
#[test]
fn msg_reaches_an_unnamed_client_by_its_address() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    a.nick("alice");
    b.until(|l| l.ends_with("is now known as alice"));

    a.say(&format!("/msg {} psst", b.who));
    b.expect("alice (private): psst");
    a.expect(&format!("-> {}: psst", b.who));

    b.say(&format!("/msg {} hi back", address_of(&b)));
    b.expect(&format!("{0} (private): hi back", b.who));
    b.expect(&format!("-> {0}: hi back", b.who));
}

/// A message to oneself: both lines go to the sender, target line first.
#[test]
fn msg_to_self_gives_the_sender_both_lines() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    a.say(&format!("/msg {} note to self", a.who));
    a.expect(&format!("{} (private): note to self", a.who));
    a.expect(&format!("-> {}: note to self", a.who));

    a.nick("alice");
    b.until(|l| l.ends_with("is now known as alice"));
    a.say("/msg ALICE again");
    a.expect("alice (private): again");
    a.expect("-> alice: again");

    a.say("marker");
    a.expect("alice: marker");
    b.expect("alice: marker");
}

/// Unknown names, and clients whose leaving was already announced, are "no
/// such user" (named or by address).
#[test]
fn msg_to_an_unknown_or_departed_user_is_refused() {
    let addr = start(config());
    let mut a = Client::join(addr);
    a.say("/msg nobody hello?");
    a.expect("*** no such user: nobody");

    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    b.nick("bob");
    a.until(|l| l.ends_with("is now known as bob"));
    b.say("/quit");
    a.expect("bob has left");
    a.say("/msg bob are you there?");
    a.expect("*** no such user: bob");

    let mut c = Client::join(addr);
    a.expect(&format!("{} has arrived", c.who));
    let c_who = c.who.clone();
    c.finish_sending();
    a.expect(&format!("{c_who} has left"));
    a.say(&format!("/msg {c_who} still there?"));
    a.expect(&format!("*** no such user: {c_who}"));
}

// ----- /quit ------------------------------------------------------------------------

/// `/quit` without a reason: the others get `<who> has left`, the quitter
/// nothing more before the server closes the connection.
#[test]
fn quit_without_reason() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    a.say("/quit");
    b.expect(&format!("{} has left", a.who));
    assert_eq!(a.read_to_end(), b"", "the quitter got nothing more");

    // Surplus spaces are no reason; the command word ignores case.
    let mut c = Client::join(addr);
    b.expect(&format!("{} has arrived", c.who));
    c.say("/QUIT   ");
    b.expect(&format!("{} has left", c.who));
    c.expect_closed();
}

/// `/quit REASON`: `<who> has left (REASON)`, by name once one is taken.
#[test]
fn quit_with_reason() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    let old = a.who.clone();
    a.nick("alice");
    b.expect(&format!("{old} is now known as alice"));

    a.say("/quit  gone fishing ");
    b.expect("alice has left (gone fishing)");
    assert_eq!(a.read_to_end(), b"");
    b.say("/who");
    b.expect(&format!("*** 1 here: {}", b.who));
}

// ----- //text, unknown commands, /help ----------------------------------------------

/// `//text` sends the line `/text`; a line starting with a space is chat.
#[test]
fn double_slash_sends_a_literal_slash_line() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    for (typed, shown) in [
        ("//etc/passwd", "/etc/passwd"),
        ("//", "/"),
        ("///x", "//x"),
        ("//who", "/who"),
        (" /who", " /who"),
    ] {
        a.say(typed);
        let want = format!("{}: {shown}", a.who);
        a.expect(&want);
        b.expect(&want);
    }
}

/// An unknown command gets a refusal naming it, and is never broadcast: the
/// other client's next line is a line sent after it.
#[test]
fn unknown_commands_are_refused_and_never_broadcast() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    a.say("/frobnicate now please");
    a.expect("*** unknown command: /frobnicate (try /help)");
    a.say("/");
    a.expect("*** unknown command: / (try /help)");
    a.say("/Nick2 x");
    a.expect("*** unknown command: /Nick2 (try /help)");
    // The word starts right after the slash: a space there is not `/quit`.
    a.say("/ quit smoking is hard");
    a.expect("*** unknown command: / (try /help)");

    a.say("after");
    let want = format!("{}: after", a.who);
    a.expect(&want);
    b.expect(&want);
}

/// `/help` lists the commands, to the sender only.
#[test]
fn help_lists_every_command() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    a.say("/HELP");
    for want in HELP {
        a.expect(want);
    }
    let all = HELP.join("\n");
    for command in [
        "/nick", "/who", "/me", "/msg", "/quit", "/stats", "/help", "//text",
    ] {
        assert!(all.contains(command), "/help does not mention {command}");
    }
    a.say("marker");
    let want = format!("{}: marker", a.who);
    a.expect(&want);
    b.expect(&want);
}

// ----- /stats -----------------------------------------------------------------------

/// `/stats` is one line to the sender with its own queue and skips and the
/// server's counters.
#[test]
fn stats_reports_the_clients_and_the_servers_counters() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));

    let stats = a.stats();
    for key in [
        "queued",
        "skipped",
        "clients",
        "total_queued",
        "short_writes",
        "slow_disconnects",
        "skipped_total",
    ] {
        assert!(stats.contains_key(key), "/stats lacks {key}: {stats:?}");
    }
    assert_eq!(stats["clients"], 2);
    assert_eq!(stats["skipped"], 0);
    assert_eq!(stats["skipped_total"], 0);
    assert_eq!(stats["slow_disconnects"], 0);

    a.say("marker");
    let want = format!("{}: marker", a.who);
    a.expect(&want);
    b.expect(&want);
}

// ----- cleaning -------------------------------------------------------------------

/// What a user chose and a command shows (reasons, rejected names, unknown
/// command words and names, action and private text) reaches terminals in
/// visible form: C0 controls in caret notation, C1 and bidi as `<U+....>`.
#[test]
fn commands_show_user_chosen_text_cleaned() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    b.nick("bob");
    a.until(|l| l.ends_with("is now known as bob"));

    let cases: &[(&[u8], &str)] = &[
        (
            b"/nick a\x1b[2J",
            "*** invalid name: a^[[2J (only letters, digits, _ - . allowed)",
        ),
        (
            b"/nick \x1b]0;owned\x07",
            "*** invalid name: ^[]0;owned^G (must start with a letter)",
        ),
        (
            "/nick x\u{202E}fed".as_bytes(),
            "*** invalid name: x<U+202E>fed (invisible character U+202E)",
        ),
        (b"/msg \x1b[2Jbob hi", "*** no such user: ^[[2Jbob"),
        (b"/\x1b[31m", "*** unknown command: /^[[31m (try /help)"),
    ];
    for (line, want) in cases {
        let mut raw = line.to_vec();
        raw.push(b'\n');
        a.send(raw);
        a.expect(want);
    }

    a.send("/me \x1b]0;owned\x07 waves\n");
    let want = format!("* {} ^[]0;owned^G waves", a.who);
    a.expect(&want);
    b.expect(&want);

    a.send("/msg bob \rbob: fake\u{9b}31m\n");
    b.expect(&format!("{} (private): ^Mbob: fake<U+009B>31m", a.who));
    a.expect("-> bob: ^Mbob: fake<U+009B>31m");

    b.send("/quit \x1b[2Jbye\u{2066}\x7f\n");
    a.expect("bob has left (^[[2Jbye<U+2066>^?)");
}

// ----- --history ------------------------------------------------------------------

/// With `--history 3` and 8 lines said, a newcomer gets exactly the last 3
/// after its greeting, then live traffic.
#[test]
fn history_replays_exactly_the_last_n_lines_then_live() {
    const N: usize = 3;
    let addr = start(natter::Config {
        history: N,
        ..config()
    });
    let mut a = Client::join(addr);
    for i in 1..=N + 5 {
        a.say(&format!("line {i}"));
    }
    for i in 1..=N + 5 {
        a.expect(&format!("{}: line {i}", a.who));
    }

    let mut c = Client::join(addr);
    for i in 6..=N + 5 {
        c.expect(&format!("{}: line {i}", a.who));
    }
    a.expect(&format!("{} has arrived", c.who));
    a.say("live");
    c.expect(&format!("{}: live", a.who));
    a.expect(&format!("{}: live", a.who));
}

/// The history holds chat lines (`/me` included), formatted as they were
/// sent; not server notices (arrivals, renames, leavings) nor private lines.
#[test]
fn history_keeps_chat_lines_not_notices() {
    let addr = start(natter::Config {
        history: 10,
        ..config()
    });
    let mut a = Client::join(addr);
    let first = a.who.clone();
    a.say("one");
    a.expect(&format!("{first}: one"));
    a.nick("alice");
    a.say("/me waves");
    a.expect("* alice waves");
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    b.expect(&format!("{first}: one"));
    b.expect("* alice waves");
    a.say(&format!("/msg {} secret", b.who));
    a.expect(&format!("-> {}: secret", b.who));
    b.expect("alice (private): secret");
    a.say("/who");
    a.expect(&format!("*** 2 here: alice, {}", b.who));
    b.say("/quit");
    a.expect(&format!("{} has left", b.who));

    let mut c = Client::join(addr);
    c.expect(&format!("{first}: one"));
    c.expect("* alice waves");
    a.expect(&format!("{} has arrived", c.who));
    a.say("live");
    c.expect("alice: live");
}

// ----- --ask-name -----------------------------------------------------------------

/// Under `--ask-name`: an invalid name, then a taken one, are refused and
/// asked again; a good one gets `You are <name>`. Nothing about the client is
/// broadcast before, and it receives nothing of the room while unnamed.
#[test]
fn ask_name_asks_again_until_a_free_valid_name() {
    let addr = start(natter::Config {
        ask_name: true,
        ..config()
    });
    let mut a = connect_asked(addr);
    answer(&mut a, "alice");

    let mut n = connect_asked(addr);
    let n_address = address_of(&n);
    // The room goes on; the unnamed client sees none of it, and is not in it.
    a.say("while you were naming");
    a.expect("alice: while you were naming");
    a.say("/who");
    a.expect("*** 1 here: alice");
    a.say(&format!("/msg {n_address} hello?"));
    a.expect(&format!("*** no such user: {n_address}"));

    n.say("1x");
    n.expect("*** invalid name: 1x (must start with a letter)");
    n.expect("What is your name?");
    n.say("/nick bob");
    n.expect("*** invalid name: /nick bob (must start with a letter)");
    n.expect("What is your name?");
    n.say("ALICE");
    n.expect("*** name taken: ALICE");
    n.expect("What is your name?");
    answer(&mut n, "Bob");

    // A's very next line is the arrival: nothing was broadcast before.
    a.expect("Bob has arrived");
    n.say("hi");
    a.expect("Bob: hi");
    n.expect("Bob: hi");
    a.say("/who");
    a.expect("*** 2 here: alice, Bob");
}

/// A client that leaves before choosing a name was never in the room, so its
/// leaving is not announced either.
#[test]
fn ask_name_client_leaving_unnamed_is_never_announced() {
    let addr = start(natter::Config {
        ask_name: true,
        ..config()
    });
    let mut a = connect_asked(addr);
    answer(&mut a, "alice");

    let mut n = connect_asked(addr);
    n.say("9lives");
    n.expect("*** invalid name: 9lives (must start with a letter)");
    n.expect("What is your name?");
    n.finish_sending();
    assert_eq!(n.read_to_end(), b"", "closed after its input ended");

    a.say("marker");
    a.expect("alice: marker");
}

// ----- --motd ---------------------------------------------------------------------

/// `--motd FILE`: the file's lines, cleaned (CRLF read as a line ending, a
/// last line without newline kept), right after the greeting.
#[test]
fn motd_lines_follow_the_greeting() {
    let motd = TempFile::new(
        "motd",
        b"Welcome to natter.\r\n\nBe kind. \x1b[31mred\x1b[0m\nlast line without newline",
    );
    let addr = start(natter::Config {
        motd: Some(motd.0.clone()),
        ..config()
    });
    let mut a = Client::join(addr);
    a.expect("Welcome to natter.");
    a.expect("");
    a.expect("Be kind. ^[[31mred^[[0m");
    a.expect("last line without newline");
    a.say("marker");
    a.expect(&format!("{}: marker", a.who));

    // Every newcomer gets it; the others do not get it again.
    let mut b = Client::join(addr);
    b.expect("Welcome to natter.");
    a.expect(&format!("{} has arrived", b.who));
    a.say("marker 2");
    a.expect(&format!("{}: marker 2", a.who));
}

/// The daemon re-reads the motd on SIGHUP; newcomers get the new text.
#[test]
fn motd_is_reread_on_sighup() {
    let motd = TempFile::new("motd-hup", b"old motd\n");
    let path = motd.0.to_str().expect("UTF-8 temp path");
    // The test waits for the daemon's info line, so the level is set here.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_natter"));
    cmd.args(["--listen", "127.0.0.1:0", "--motd", path])
        .env("RUST_LOG", "info");
    let mut daemon = common::Daemon::spawn(cmd);
    let mut a = Client::join(daemon.addr);
    a.expect("old motd");

    std::fs::write(&motd.0, b"new motd\nsecond line\n").unwrap();
    daemon.signal("HUP");
    daemon.log_until("re-read motd");
    let mut b = Client::join(daemon.addr);
    b.expect("new motd");
    b.expect("second line");
    a.expect(&format!("{} has arrived", b.who));
}

// ----- --who-on-join --------------------------------------------------------------

/// `--who-on-join`: after its greeting a newcomer gets the `/who` line, itself
/// included, in order of arrival.
#[test]
fn who_on_join_tells_the_newcomer_who_is_here() {
    let addr = start(natter::Config {
        who_on_join: true,
        ..config()
    });
    let mut a = Client::join(addr);
    a.expect(&format!("*** 1 here: {}", a.who));
    a.nick("alice");
    let mut b = Client::join(addr);
    b.expect(&format!("*** 2 here: alice, {}", b.who));
    a.expect(&format!("{} has arrived", b.who));
    let mut c = Client::join(addr);
    c.expect(&format!("*** 3 here: alice, {}, {}", b.who, c.who));
    a.expect(&format!("{} has arrived", c.who));
    b.expect(&format!("{} has arrived", c.who));
    a.say("marker");
    for x in [&mut a, &mut b, &mut c] {
        x.expect("alice: marker");
    }
}

// ----- all together ---------------------------------------------------------------

/// With every flag: prompt, `You are <name>`, motd, who line, history, then
/// live traffic, in that order.
#[test]
fn a_newcomer_gets_greeting_motd_who_history_then_live() {
    let motd = TempFile::new("motd-order", b"motd 1\nmotd 2\n");
    let addr = start(natter::Config {
        ask_name: true,
        who_on_join: true,
        motd: Some(motd.0.clone()),
        history: 2,
        ..config()
    });
    let mut a = connect_asked(addr);
    answer(&mut a, "alice");
    a.expect("motd 1");
    a.expect("motd 2");
    a.expect("*** 1 here: alice");
    for line in ["one", "two", "three"] {
        a.say(line);
        a.expect(&format!("alice: {line}"));
    }

    let mut b = connect_asked(addr);
    answer(&mut b, "Борис");
    b.expect("motd 1");
    b.expect("motd 2");
    b.expect("*** 2 here: alice, Борис");
    b.expect("alice: two");
    b.expect("alice: three");
    a.expect("Борис has arrived");
    a.say("live");
    b.expect("alice: live");
}
