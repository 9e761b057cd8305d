//! Rooms (`/join`, `/rooms`, `/who #ROOM`, `/topic`), over real sockets,
//! with exact bytes. A claim that something was *not* sent is proved by a
//! marker: the next line the client reads is one sent afterwards.

mod common;

use std::net::SocketAddr;
use std::thread;

use common::{Client, config, start};

/// `c` takes `name` with `/nick` (alone in its room, or the caller reads the
/// others' copies of the rename line).
fn named(addr: SocketAddr, name: &str) -> Client {
    let mut c = Client::join(addr);
    c.nick(name);
    c
}

/// `c` moves to `room`; reads its own lines up to the who line.
fn join(c: &mut Client, room: &str) {
    c.say(&format!("/join {room}"));
    c.expect(&format!("*** you are in {room}"));
    c.until(|l| l.starts_with("*** ") && l.contains(" here: "));
}

#[test]
fn joining_moving_and_listing_with_exact_lines() {
    let addr = start(config());
    let mut alice = Client::join(addr);
    let mut bob = Client::join(addr);
    alice.expect(&format!("{} has arrived", bob.who));
    let mut carol = Client::join(addr);
    alice.expect(&format!("{} has arrived", carol.who));
    bob.expect(&format!("{} has arrived", carol.who));

    bob.say("/join #Help");
    bob.expect("*** you are in #Help");
    bob.expect(&format!("*** 1 here: {}", bob.who));
    alice.expect(&format!("{} has gone to #Help", bob.who));
    carol.expect(&format!("{} has gone to #Help", bob.who));

    // Case-insensitive, shown as first created; the room hears the arrival.
    carol.say("/join #HELP");
    carol.expect("*** you are in #Help");
    carol.expect(&format!("*** 2 here: {}, {}", bob.who, carol.who));
    bob.expect(&format!("{} has arrived", carol.who));
    alice.expect(&format!("{} has gone to #Help", carol.who));

    carol.say("/join #help");
    carol.expect("*** you are already in #Help");

    alice.say("/rooms");
    alice.expect("*** rooms: #Help (2), #lobby (1)");
    alice.say("/who");
    alice.expect(&format!("*** 1 here: {}", alice.who));
    alice.say("/who #help");
    alice.expect(&format!("*** 2 here: {}, {}", bob.who, carol.who));
    alice.say("/who #nowhere");
    alice.expect("*** no such room: #nowhere");
    alice.say("/join lobby");
    alice.expect("*** invalid room: lobby (must start with #)");
    alice.say("/join #a b");
    alice.expect("*** invalid room: #a b (only letters, digits, - and _ allowed)");
    alice.say(&format!("/join #{}", "x".repeat(33)));
    alice.expect(&format!(
        "*** invalid room: #{} (longer than 32 characters after #)",
        "x".repeat(33)
    ));
    alice.say("/join");
    alice.expect("*** usage: /join #ROOM");

    // What is said in a room stays there: the lobby's marker comes next.
    bob.say("only for help");
    carol.expect(&format!("{}: only for help", bob.who));
    bob.expect(&format!("{}: only for help", bob.who));
    alice.say("marker");
    alice.expect(&format!("{}: marker", alice.who));
}

#[test]
fn topics_are_shown_set_and_announced_to_the_room() {
    let addr = start(config());
    let mut alice = named(addr, "alice");
    alice.say("/topic");
    alice.expect("*** no topic in #lobby");
    alice.say("/topic tea at \x1b[2J four");
    alice.expect("*** alice set the topic: tea at ^[[2J four");
    alice.say("/topic");
    alice.expect("*** topic: tea at ^[[2J four");
    alice.say(&format!("/topic {}", "t".repeat(201)));
    alice.expect("*** topic too long: at most 200 bytes");
    // A mover is told the new room's topic after where it is.
    let mut bob = Client::join(addr);
    alice.expect(&format!("{} has arrived", bob.who));
    bob.say("/nick bob");
    bob.expect(&format!("{} is now known as bob", bob.who));
    alice.expect(&format!("{} is now known as bob", bob.who));
    join(&mut bob, "#help");
    alice.expect("bob has gone to #help");
    bob.say("/topic cake");
    bob.expect("*** bob set the topic: cake");
    alice.say("/join #help");
    alice.expect("*** you are in #help");
    alice.expect("*** topic: cake");
    alice.expect("*** 2 here: bob, alice");
    bob.expect("alice has arrived");
}

#[test]
fn names_are_unique_across_rooms_and_msg_crosses_them() {
    let addr = start(config());
    let mut alice = named(addr, "alice");
    let mut bob = Client::join(addr);
    alice.expect(&format!("{} has arrived", bob.who));
    join(&mut bob, "#elsewhere");
    alice.expect(&format!("{} has gone to #elsewhere", bob.who));
    bob.say("/nick ALICE");
    bob.expect("*** name taken: ALICE");
    bob.nick("bob");
    alice.say("/msg bob across the hall");
    bob.expect("alice (private): across the hall");
    alice.expect("-> bob: across the hall");
}

#[test]
fn leaving_is_announced_in_the_leavers_room_only_and_empty_rooms_go() {
    let addr = start(config());
    let mut alice = named(addr, "alice");
    let mut bob = Client::join(addr);
    alice.expect(&format!("{} has arrived", bob.who));
    join(&mut bob, "#quiet");
    alice.expect(&format!("{} has gone to #quiet", bob.who));
    let mut carol = Client::join(addr);
    alice.expect(&format!("{} has arrived", carol.who));
    join(&mut carol, "#quiet");
    alice.expect(&format!("{} has gone to #quiet", carol.who));
    bob.expect(&format!("{} has arrived", carol.who));
    carol.say("/quit bye");
    bob.expect(&format!("{} has left (bye)", carol.who));
    bob.say("/quit");
    alice.say("/rooms");
    // Bob's and carol's leaving went to #quiet only; #quiet is gone.
    alice.expect("*** rooms: #lobby (1)");
}

#[test]
fn max_rooms_bounds_the_rooms() {
    let addr = start(natter::Config {
        max_rooms: 2,
        ..config()
    });
    let mut a = Client::join(addr);
    a.say("/join #one");
    a.expect("*** you are in #one");
    a.expect(&format!("*** 1 here: {}", a.who));
    let mut b = Client::join(addr);
    b.say("/join #two");
    b.expect("*** too many rooms (2): join one of /rooms");
    b.say("/join #ONE");
    b.expect("*** you are in #one");
}

#[test]
fn the_default_room_can_be_renamed() {
    let addr = start(natter::Config {
        default_room: "#general".into(),
        ..config()
    });
    let mut a = Client::join(addr);
    a.say("/rooms");
    a.expect("*** rooms: #general (1)");
}

/// 100 clients in 10 rooms; one sender per room sends 500 lines, all at
/// once: every client gets exactly its room's lines, in order, and nothing
/// else.
#[test]
fn rooms_are_isolated_under_load() {
    const ROOMS: usize = 10;
    const PER_ROOM: usize = 10;
    const LINES: usize = 500;
    let addr = start(natter::Config {
        rate: 0,
        ..config()
    });
    let mut rooms: Vec<Vec<Client>> = Vec::new();
    for r in 0..ROOMS {
        let mut room = Vec::new();
        for _ in 0..PER_ROOM {
            let mut c = Client::join(addr);
            join(&mut c, &format!("#room{r}"));
            room.push(c);
        }
        rooms.push(room);
    }
    // Everyone is in place once each one's own marker comes back.
    for room in &mut rooms {
        for c in room.iter_mut() {
            c.say("/who");
            c.until(|l| l.starts_with(&format!("*** {PER_ROOM} here: ")));
        }
    }
    let mut readers = Vec::new();
    for (r, room) in rooms.into_iter().enumerate() {
        let sender = room[0].who.clone();
        for (i, mut c) in room.into_iter().enumerate() {
            if i == 0 {
                let mut burst = String::new();
                for n in 0..LINES {
                    burst.push_str(&format!("room {r} line {n}\n"));
                }
                c.send(burst);
            }
            let sender = sender.clone();
            readers.push(thread::spawn(move || {
                for n in 0..LINES {
                    c.expect(&format!("{sender}: room {r} line {n}"));
                }
                // Nothing else came: the next line is the answer to this.
                c.say("/who");
                let next = c.line();
                assert!(
                    next.starts_with(&format!("*** {PER_ROOM} here: ")),
                    "{next}"
                );
                c // Kept until everyone is checked: a leaving is a line too.
            }));
        }
    }
    let clients: Vec<Client> = readers
        .into_iter()
        .map(|r| r.join().expect("a reader got exactly its room's lines"))
        .collect();
    drop(clients);
}

/// A client moves from a busy room to another busy room: it gets a prefix
/// of the first room's lines with no gap, then the second room's lines from
/// just after its arrival there, with no gap and nothing from before.
#[test]
fn a_mover_during_a_burst_misses_nothing_and_sees_nothing_early() {
    const LINES: usize = 20_000;
    let addr = start(natter::Config {
        rate: 0,
        ..config()
    });
    let mut a_sender = Client::join(addr);
    let mut b_sender = Client::join(addr);
    a_sender.expect(&format!("{} has arrived", b_sender.who));
    join(&mut b_sender, "#b");
    a_sender.expect(&format!("{} has gone to #b", b_sender.who));
    let mut watcher = Client::join(addr);
    a_sender.expect(&format!("{} has arrived", watcher.who));
    join(&mut watcher, "#b");
    a_sender.expect(&format!("{} has gone to #b", watcher.who));
    b_sender.expect(&format!("{} has arrived", watcher.who));
    let mut mover = Client::join(addr);
    a_sender.expect(&format!("{} has arrived", mover.who));
    // Both rooms talk, 50 lines a millisecond, while the mover moves.
    let a_talk = talk(&mut a_sender, "a", LINES);
    let b_talk = talk(&mut b_sender, "b", LINES);
    mover.until(|l| l.ends_with(": a 100"));
    mover.say("/join #b");
    let mut next_a = 101;
    loop {
        let line = mover.line();
        if line == "*** you are in #b" {
            break;
        }
        assert_eq!(
            line,
            format!("{}: a {next_a}", a_sender.who),
            "room a, in order"
        );
        next_a += 1;
    }
    let who = mover.line();
    assert!(who.starts_with("*** 3 here: "), "{who}");
    let first_b = mover.line();
    let first: usize = first_b
        .strip_prefix(&format!("{}: b ", b_sender.who))
        .unwrap_or_else(|| panic!("{first_b}"))
        .parse()
        .unwrap();
    assert!(first < LINES - 1000, "moved while #b was still talking");
    for n in first + 1..LINES {
        mover.expect(&format!("{}: b {n}", b_sender.who));
    }
    // The watcher in #b saw the arrival just before line `first`.
    let mut before = None;
    loop {
        let line = watcher.line();
        if line == format!("{} has arrived", mover.who) {
            break;
        }
        before = Some(line);
    }
    let expected_before = (first > 0).then(|| format!("{}: b {}", b_sender.who, first - 1));
    assert_eq!(before, expected_before, "arrival just before line {first}");
    a_talk.join().unwrap();
    b_talk.join().unwrap();
}

/// `sender` says `<tag> 0` … `<tag> <lines - 1>`, fifty lines a millisecond,
/// on a thread, and reads its own lines on another.
fn talk(sender: &mut Client, tag: &str, lines: usize) -> thread::JoinHandle<()> {
    let echo = drain_lines(sender.stream().try_clone().unwrap());
    let mut stream = sender.stream().try_clone().unwrap();
    let tag = tag.to_string();
    thread::spawn(move || {
        use std::io::Write;
        for start in (0..lines).step_by(50) {
            let chunk: String = (start..(start + 50).min(lines))
                .map(|n| format!("{tag} {n}\n"))
                .collect();
            stream.write_all(chunk.as_bytes()).unwrap();
            thread::sleep(std::time::Duration::from_millis(1));
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        echo.join().unwrap();
    })
}

/// Reads everything `stream` receives, on a thread.
fn drain_lines(stream: std::net::TcpStream) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        use std::io::Read;
        let mut stream = stream;
        let mut buf = vec![0; 64 * 1024];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    })
}
