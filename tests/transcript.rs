//! The reference behaviour, byte for byte: the two-client netcat transcript
//! of `SEED.md`, and the input rules of Go's `bufio.Scanner`.

mod common;

use common::{Client, config, start};

/// The transcript from SEED.md, line for line.
#[test]
fn the_seed_transcript_line_for_line() {
    let addr = start(config());
    common::play_seed_transcript(|| Client::connect(addr));
}

#[test]
fn crlf_input_loses_its_carriage_return() {
    let addr = start(config());
    let mut a = Client::join(addr);
    a.send("one\r\ntwo\r\n");
    a.expect(&format!("{}: one", a.who));
    a.expect(&format!("{}: two", a.who));
}

#[test]
fn a_line_sent_one_byte_at_a_time_arrives_whole() {
    let addr = start(config());
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.until(|l| l.ends_with("has arrived"));
    for byte in b"split across many writes\r\n" {
        b.send([*byte]);
    }
    let want = format!("{}: split across many writes", b.who);
    a.expect(&want);
    b.expect(&want);
}

#[test]
fn a_final_line_without_newline_counts_and_a_one_shot_sender_sees_its_echo() {
    // What `printf 'hi\nbye' | nc -N host port` does.
    let addr = start(config());
    let mut watcher = Client::join(addr);
    let mut once = Client::join(addr);
    watcher.until(|l| l.ends_with("has arrived"));
    once.send("hi\nbye");
    once.finish_sending();
    let rest = String::from_utf8(once.read_to_end()).unwrap();
    assert_eq!(rest, format!("{0}: hi\n{0}: bye\n", once.who));
    watcher.expect(&format!("{}: hi", once.who));
    watcher.expect(&format!("{}: bye", once.who));
    watcher.expect(&format!("{} has left", once.who));
}

#[test]
fn an_empty_line_is_sent_as_an_empty_message() {
    let addr = start(config());
    let mut a = Client::join(addr);
    a.send("\n\r\n");
    a.expect(&format!("{}: ", a.who));
    a.expect(&format!("{}: ", a.who));
}

#[test]
fn ipv6_loopback_clients_are_named_like_go_names_them() {
    let Ok(addr) = common::try_start(natter::Config {
        listen: "[::1]:0".into(),
        ..config()
    }) else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let mut a = Client::join(addr);
    assert!(a.who.starts_with("[::1]:"), "{}", a.who);
    a.say("hello over v6");
    a.expect(&format!("{}: hello over v6", a.who));
}

#[test]
fn the_binary_logs_the_real_bound_address() {
    let mut daemon = common::Daemon::start(&[]);
    assert_ne!(daemon.addr.port(), 0);
    let a = Client::join(daemon.addr);
    assert!(a.who.starts_with("127.0.0.1:"));
    daemon.log_until(&format!("{} connected", a.who));
}
