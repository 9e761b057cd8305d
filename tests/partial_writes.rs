//! Partial writes and backpressure, made visible on loopback.
//!
//! Loopback sockets swallow megabytes, so the server is started with a tiny
//! `SO_SNDBUF` (`--sndbuf`) and a cap on bytes per write call
//! (`--max-write`), and the slow client shrinks its own `SO_RCVBUF`. Then
//! the server must keep most of ~2 MiB in its own queue, write it in pieces,
//! and deliver every byte in order once the client reads again, while the
//! other clients are served as if nothing happened.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;

use common::{Client, config, start};
use socket2::{Domain, Socket, Type};

const LINES: usize = 20_000;

fn text(n: usize) -> String {
    format!("{n:06} {}", "x".repeat(90))
}

#[test]
fn a_stalled_reader_gets_every_byte_later_and_nobody_waits_for_it() {
    let addr = start(natter::Config {
        rate: 0,
        sndbuf: Some(4096),
        max_write: 1000,
        max_output: 8 << 20, // Above the ~2 MiB this test queues.
        ..config()
    });

    // The slow client: a small receive buffer, set before connecting.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut slow = Client::from_stream(TcpStream::from(socket));
    let hello = slow.line();
    let slow_who = hello.trim_start_matches("You are ").to_string();

    let mut talker = Client::join(addr);
    let mut listener = Client::join(addr);
    talker.until(|l| l.ends_with("has arrived"));

    // The listener and the talker's own echo are read on threads while the
    // talker writes; the slow client reads nothing at all meanwhile.
    let talker_who = talker.who.clone();
    let read_all = |mut c: Client| {
        let talker_who = talker_who.clone();
        thread::spawn(move || {
            for n in 0..LINES {
                c.expect(&format!("{talker_who}: {}", text(n)));
            }
            c
        })
    };
    let mut writer = talker.stream().try_clone().unwrap();
    let echo = read_all(talker);
    let heard = read_all(listener);
    let mut batch = String::new();
    for n in 0..LINES {
        batch.push_str(&text(n));
        batch.push('\n');
    }
    writer.write_all(batch.as_bytes()).unwrap();

    // Both healthy clients got all ~2 MiB while the slow one read nothing.
    let mut talker = echo.join().unwrap();
    listener = heard.join().unwrap();
    let stats = talker.stats();
    let queued = stats["total_queued"];
    assert!(
        queued > 1_900_000,
        "the server should hold most of the ~2 MiB for the stalled client, holds {queued}"
    );

    // Now the slow client reads: exactly the expected stream, nothing lost,
    // nothing duplicated, in order.
    slow.expect(&format!("{} has arrived", talker.who));
    slow.expect(&format!("{} has arrived", listener.who));
    for n in 0..LINES {
        let line = slow.line();
        assert_eq!(line, format!("{}: {}", talker.who, text(n)), "line {n}");
    }
    slow.say("caught up");
    slow.expect(&format!("{slow_who}: caught up"));
    listener.expect(&format!("{slow_who}: caught up"));

    let stats = talker.stats();
    assert!(stats["short_writes"] > 0, "short writes counted: {stats:?}");
    assert_eq!(stats["slow_disconnects"], 0);
    // Queues drained: only this /stats answer itself may be in flight.
    assert!(stats["total_queued"] < 4096, "{stats:?}");
}
