//! Backpressure and resource limits: every test crosses one limit and checks
//! what the client sees, what the others see, and what the server holds.
//!
//! Loopback sockets buffer megabytes, so tests that need a client to fall
//! behind shrink its `SO_RCVBUF` (socket2) and the server's `SO_SNDBUF`
//! (`--sndbuf`). Memory is read from `/proc/PID/status` of a natter process
//! started for the test.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Daemon, config, start};
use socket2::{Domain, Socket, Type};

/// A client whose receive buffer is a few KiB, so the server's queue for it
/// fills as soon as it stops reading.
fn stalled_client(addr: SocketAddr) -> Client {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut c = Client::from_stream(TcpStream::from(socket));
    let hello = c.line();
    c.who = hello.trim_start_matches("You are ").to_string();
    c
}

/// A client connecting from `ip` (any address in 127.0.0.0/8).
fn client_from(ip: &str, addr: SocketAddr) -> Client {
    Client::from_stream(common::connect_from(ip, addr))
}

/// `n` chat clients that have all seen each other arrive.
fn chatters(addr: SocketAddr, n: usize) -> Vec<Client> {
    let mut all: Vec<Client> = Vec::new();
    for _ in 0..n {
        let c = Client::join(addr);
        for earlier in &mut all {
            earlier.expect(&format!("{} has arrived", c.who));
        }
        all.push(c);
    }
    all
}

/// Each chatter sends `per_client` lines; every chatter reads all
/// `n * per_client` of them (on threads), checking nothing is lost. Other
/// lines seen meanwhile (arrivals, departures) are returned per client.
fn chat_round(chatters: Vec<Client>, per_client: usize, tag: &str) -> Vec<(Client, Vec<String>)> {
    let n = chatters.len();
    let handles: Vec<_> = chatters
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let tag = tag.to_string();
            thread::spawn(move || {
                let mut batch = String::new();
                for k in 0..per_client {
                    batch.push_str(&format!("{tag} {i} {k} {}\n", "y".repeat(60)));
                }
                c.send(&batch);
                let mut got = 0;
                let mut other = Vec::new();
                while got < n * per_client {
                    let line = c.line();
                    if line.contains(&format!(": {tag} ")) {
                        got += 1;
                    } else {
                        other.push(line);
                    }
                }
                (c, other)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn clients(round: Vec<(Client, Vec<String>)>) -> Vec<Client> {
    round.into_iter().map(|(c, _)| c).collect()
}

// The two slow-reader tests chat in rounds of 100 lines from each of ten
// chatters (~85 KB for every recipient per round). Each round waits until
// every chatter has every line, so the room moves at the pace of its healthy
// readers: their backlog never passes one round, far below the cap, while the
// stalled reader's grows round after round. (One burst bigger than the cap
// would cut healthy readers too: the cap is on bytes, not on intent.)

#[test]
fn a_slow_reader_is_disconnected_and_the_others_get_everything() {
    let mut daemon = Daemon::start(&["--rate", "0", "--sndbuf", "32KiB", "--max-output", "256KiB"]);
    let mut slow = stalled_client(daemon.addr);
    let mut talk = chatters(daemon.addr, 10);
    let left = format!("{} has left", slow.who);
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 30, "the slow client was never disconnected");
        let round = chat_round(talk, 100, &format!("round{rounds}"));
        let told = round.iter().all(|(_, other)| other.contains(&left));
        talk = clients(round);
        if told {
            break;
        }
    }
    assert!(
        rounds >= 3,
        "cut after {rounds} rounds, before 256 KiB queued"
    );
    let warning = daemon.log_until("over --max-output");
    assert!(warning.contains(&slow.who), "{warning}");
    assert!(warning.contains("bytes queued"), "{warning}");
    // The others keep chatting afterwards.
    talk = clients(chat_round(talk, 100, "after"));
    let stats = talk[0].stats();
    assert_eq!(stats["slow_disconnects"], 1, "{stats:?}");
    assert!(
        daemon.rss_kib() < 32 * 1024,
        "RSS {} KiB with a 256 KiB per-client cap",
        daemon.rss_kib()
    );
    // The slow client got a prefix of the stream, then the connection closed.
    let rest = slow.read_to_end();
    assert!(
        !rest.is_empty() && rest.len() < rounds * 100 * 1024,
        "{}",
        rest.len()
    );
}

#[test]
fn under_drop_a_slow_reader_is_told_how_many_lines_it_missed() {
    let addr = start(natter::Config {
        rate: 0,
        sndbuf: Some(32 * 1024),
        max_output: 256 * 1024,
        slow_client: natter::SlowClient::Drop,
        ..config()
    });
    let mut slow = stalled_client(addr);
    let mut talk = chatters(addr, 10);
    // Rounds until lines were skipped for the stalled client. After each
    // round every line has been delivered to the others, so the server has
    // decided for each one whether the slow client keeps or skips it.
    let mut rounds = 0;
    let skipped = loop {
        rounds += 1;
        assert!(rounds <= 30, "nothing was ever skipped");
        talk = clients(chat_round(talk, 100, &format!("burst{rounds}")));
        let stats = talk[0].stats();
        assert_eq!(stats["slow_disconnects"], 0, "{stats:?}");
        if stats["skipped_total"] > 0 {
            break stats["skipped_total"] as usize;
        }
    };
    let sent = rounds * 10 * 100;
    // The slow client now reads what was kept: its ten arrivals, then whole
    // burst lines in order, with gaps where lines were skipped.
    for c in &talk {
        slow.expect(&format!("{} has arrived", c.who));
    }
    let mut last_seen = [None::<(usize, usize)>; 10];
    for _ in 0..sent - skipped {
        let line = slow.line();
        let (_, text) = line.split_once(": burst").expect("a burst line");
        let mut words = text.split(' ');
        let round: usize = words.next().unwrap().parse().unwrap();
        let i: usize = words.next().unwrap().parse().unwrap();
        let k: usize = words.next().unwrap().parse().unwrap();
        assert!(
            last_seen[i].is_none_or(|prev| (round, k) > prev),
            "order: {line}"
        );
        last_seen[i] = Some((round, k));
    }
    // The next broadcast comes after the notice, which carries the count.
    talk[0].say("after the burst");
    slow.expect(&format!("*** {skipped} lines skipped"));
    slow.expect(&format!("{}: after the burst", talk[0].who));
    let mine = slow.stats();
    assert_eq!(mine["skipped"], skipped as u64);
}

#[test]
fn many_slow_readers_pause_reading_instead_of_growing_memory() {
    let mut daemon = Daemon::start(&[
        "--rate",
        "0",
        "--sndbuf",
        "4096",
        "--max-output",
        "256MiB",
        "--max-total-output",
        "2MiB",
    ]);
    let mut reader = Client::join(daemon.addr);
    let mut stalled: Vec<Client> = (0..4).map(|_| stalled_client(daemon.addr)).collect();
    let mut sender = Client::join(daemon.addr);
    for _ in 0..5 {
        reader.until(|l| l.ends_with(" has arrived"));
    }
    // 24 MiB: far more than the kernel buffers between sender and server.
    const LINES: usize = 240_000;
    let mut writer = sender.stream().try_clone().unwrap();
    let sending = thread::spawn(move || {
        let mut batch = String::new();
        for n in 0..LINES {
            batch.push_str(&format!("{n:07} {}\n", "z".repeat(92)));
            if batch.len() > 1 << 20 {
                writer.write_all(batch.as_bytes()).unwrap();
                batch.clear();
            }
        }
        writer.write_all(batch.as_bytes()).unwrap();
    });
    let who = sender.who.clone();
    let reading = thread::spawn(move || {
        for n in 0..LINES {
            let line = reader.line();
            assert!(line.starts_with(&format!("{who}: {n:07} ")), "{line}");
        }
        reader
    });
    daemon.log_until("pausing reads");
    let rss_paused = daemon.rss_kib();
    assert!(
        !sending.is_finished(),
        "the sender must be held back by TCP while reading is paused"
    );
    // The stalled readers now read everything, in order.
    let echo = thread::spawn(move || {
        let who = sender.who.clone();
        for n in 0..LINES {
            let line = sender.line();
            assert!(line.starts_with(&format!("{who}: {n:07} ")), "{line}");
        }
        sender
    });
    let handles: Vec<_> = stalled
        .drain(..)
        .map(|mut c| {
            thread::spawn(move || {
                let mut n = 0;
                while n < LINES {
                    let line = c.line();
                    if line.ends_with(" has arrived") {
                        continue;
                    }
                    assert!(line.contains(&format!(": {n:07} ")), "{line}");
                    n += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    sending.join().unwrap();
    let mut reader = reading.join().unwrap();
    let mut sender = echo.join().unwrap();
    let stats = reader.stats();
    assert!(stats["read_pauses"] >= 1, "{stats:?}");
    assert_eq!(stats["slow_disconnects"], 0, "{stats:?}");
    sender.say("done");
    assert!(
        rss_paused < 48 * 1024,
        "RSS {rss_paused} KiB while paused with a 2 MiB total cap"
    );
    assert!(daemon.rss_kib() < 64 * 1024);
}

#[test]
fn a_100_mib_line_is_cut_and_memory_stays_flat() {
    let daemon = Daemon::start(&[]);
    let mut other = Client::join(daemon.addr);
    let mut sender = Client::join(daemon.addr);
    other.expect(&format!("{} has arrived", sender.who));
    let rss_before = daemon.rss_kib();
    let mut writer = sender.stream().try_clone().unwrap();
    let flood = thread::spawn(move || {
        let block = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            writer.write_all(&block).unwrap();
        }
        writer.write_all(b"\nafter\n").unwrap();
    });
    let cut = format!("{}: {}", sender.who, "x".repeat(4096));
    other.expect(&cut);
    sender.expect(&cut);
    sender.expect("*** line too long: cut to 4096 bytes");
    // The tail up to the newline is discarded; the next line is whole.
    other.expect(&format!("{}: after", sender.who));
    sender.expect(&format!("{}: after", sender.who));
    flood.join().unwrap();
    let rss_after = daemon.rss_kib();
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB while 100 MiB streamed in"
    );
}

#[test]
fn a_pasted_block_of_40_lines_passes_the_default_rate_at_once() {
    let addr = start(config()); // Default: 20 lines/s, burst 40.
    let mut paster = Client::join(addr);
    let mut observer = Client::join(addr);
    let mut paste = String::new();
    for n in 0..40 {
        paste.push_str(&format!("pasted line {n}\n"));
    }
    paster.send(&paste);
    for n in 0..40 {
        observer.expect(&format!("{}: pasted line {n}", paster.who));
    }
    let stats = observer.stats();
    assert_eq!(stats["rate_limited"], 0, "the paste was never throttled");
}

#[test]
fn two_thousand_lines_at_once_arrive_complete_in_order_and_no_faster_than_the_rate() {
    let addr = start(natter::Config {
        rate: 500, // Burst 1000, then 500 lines/s: at least 2 s for 2000.
        ..config()
    });
    let mut sender = Client::join(addr);
    let mut observer = Client::join(addr);
    let mut lines = String::new();
    for n in 0..2000 {
        lines.push_str(&format!("{n}\n"));
    }
    let started = Instant::now();
    sender.send(&lines);
    for n in 0..2000 {
        observer.expect(&format!("{}: {n}", sender.who));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "2000 lines at 500/s with a burst of 1000 took only {took:?}"
    );
    let stats = observer.stats();
    assert!(stats["rate_limited"] > 0, "{stats:?}");
}

#[test]
fn a_client_over_max_clients_is_told_and_the_others_never_notice() {
    let addr = start(natter::Config {
        max_clients: Some(3),
        ..config()
    });
    let mut all = chatters(addr, 3);
    let mut extra = Client::connect(addr);
    extra.expect("*** server full");
    extra.expect_closed();
    // The next thing the others see is this line: no arrival, no departure.
    let who = all[0].who.clone();
    all[0].say("still three");
    for c in &mut all {
        c.expect(&format!("{who}: still three"));
    }
}

#[test]
fn max_per_ip_limits_one_address_and_not_another() {
    let addr = start(natter::Config {
        max_per_ip: 2,
        ..config()
    });
    let mut a = client_from("127.0.0.1", addr);
    let mut b = client_from("127.0.0.1", addr);
    a.line();
    b.line();
    let mut third = client_from("127.0.0.1", addr);
    third.expect("*** too many connections from your address");
    third.expect_closed();
    let mut elsewhere = client_from("127.0.0.2", addr);
    let hello = elsewhere.line();
    assert!(hello.starts_with("You are 127.0.0.2:"), "{hello}");
}

#[test]
fn descriptor_exhaustion_neither_spins_nor_stalls() {
    // 64 descriptors in all; --max-clients is set above that so accept()
    // itself runs out (EMFILE) rather than the client cap refusing.
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 64 && exec \"$0\" --listen 127.0.0.1:0 --max-clients 1000",
        env!("CARGO_BIN_EXE_natter"),
    ]);
    let mut daemon = Daemon::spawn(cmd);
    let mut pair = chatters(daemon.addr, 2);
    let cpu_before = daemon.cpu_time();
    let mut extra = Vec::new();
    let mut busy = 0;
    for _ in 0..200 {
        let mut c = Client::connect(daemon.addr);
        let first = c.line();
        if first == "*** server busy" {
            c.expect_closed();
            busy += 1;
        } else {
            assert!(first.starts_with("You are "), "{first}");
            extra.push(c);
        }
    }
    assert!(busy > 100, "most of the 200 were turned away ({busy})");
    daemon.log_until("descriptor limit reached");
    // The first two still chat, in both directions.
    let (a, b) = (pair[0].who.clone(), pair[1].who.clone());
    pair[0].say("still here?");
    pair[1].until(|l| l == format!("{a}: still here?"));
    pair[1].say("yes");
    pair[0].until(|l| l == format!("{b}: yes"));
    let stats = pair[0].stats();
    assert!(stats["fd_exhausted"] >= 1, "{stats:?}");
    let cpu = daemon.cpu_time() - cpu_before;
    assert!(cpu < Duration::from_secs(2), "server used {cpu:?} of CPU");
    drop(extra);
}

#[test]
fn an_idle_client_is_told_and_closed() {
    let addr = start(natter::Config {
        idle_timeout: Some(Duration::from_millis(300)),
        ..config()
    });
    let started = Instant::now();
    let mut silent = Client::join(addr);
    let mut watcher = Client::connect(addr);
    watcher.line();
    silent.until(|l| l.ends_with(" has arrived"));
    silent.expect("*** idle timeout");
    silent.expect_closed();
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The watcher was silent too, so it also times out; it sees the first
    // one leave before its own notice.
    watcher.expect(&format!("{} has left", silent.who));
    watcher.expect("*** idle timeout");
}

#[test]
fn a_leaving_client_that_never_reads_is_closed_after_the_linger() {
    let addr = start(natter::Config {
        rate: 0,
        sndbuf: Some(4096),
        // A long idle timeout spaces idle sweeps out (a hundredth of it);
        // it must not delay the linger.
        idle_timeout: Some(Duration::from_secs(3600)),
        ..config()
    });
    let mut stalled = stalled_client(addr);
    let mut talker = Client::join(addr);
    stalled.expect(&format!("{} has arrived", talker.who));
    // ~200 KB: more than the stalled client's kernel buffers hold.
    let mut batch = String::new();
    for n in 0..2000 {
        batch.push_str(&format!("{n:05} {}\n", "q".repeat(90)));
    }
    let who = talker.who.clone();
    let mut writer = talker.stream().try_clone().unwrap();
    let echo = thread::spawn(move || {
        writer.write_all(batch.as_bytes()).unwrap();
        for n in 0..2000 {
            talker.expect(&format!("{who}: {n:05} {}", "q".repeat(90)));
        }
        talker
    });
    let mut talker = echo.join().unwrap();
    let queued = talker.stats()["total_queued"];
    assert!(
        queued > 100_000,
        "the stalled client has a backlog: {queued}"
    );
    // It leaves but never reads: its last output cannot be delivered.
    let started = Instant::now();
    stalled.say("/quit");
    talker.expect(&format!("{} has left", stalled.who));
    common::eventually("the linger to end", || talker.stats()["clients"] == 1);
    let waited = started.elapsed();
    assert!(
        waited >= natter::limits::LINGER - Duration::from_millis(200),
        "closed after {waited:?}, before the linger"
    );
    assert!(
        waited < natter::limits::LINGER + Duration::from_secs(5),
        "closed after {waited:?}, long after the linger"
    );
    assert!(talker.stats()["total_queued"] < 4096);
}

#[test]
fn a_pause_that_does_not_end_by_itself_ends_by_closing_the_stalled() {
    // Two clients fill their own queues with /msg to themselves and never
    // read: together they hold more than --max-total-output, each less than
    // --max-output. Reading pauses for everyone; since nothing new is
    // produced, their queues never grow past the per-client cap. Once their
    // sockets have taken nothing for PAUSE_STALL, the biggest holders are
    // closed as slow and the room goes on.
    let (addr, metrics) = common::start_with_metrics(natter::Config {
        rate: 0,
        sndbuf: Some(4096),
        max_output: 96 * 1024,
        max_total_output: 100 * 1024,
        metrics: Some("127.0.0.1:0".into()),
        ..config()
    });
    let mut stalled = [stalled_client(addr), stalled_client(addr)];
    let mut chat = Client::join(addr);
    for c in &mut stalled {
        // 14 × (private line + echo) of ~3 KB each: ~84 KB per client.
        let line = format!("/msg {} {}\n", c.who, "p".repeat(3000));
        c.send(line.repeat(14));
    }
    // Their lines take a few turns (each turn gives one client at most half
    // its cap); the pause starts once the total passes the cap.
    common::eventually("reading to pause", || {
        common::scrape(metrics)["natter_reading_paused"] == 1
    });
    let started = Instant::now();
    chat.say("hello");
    let mut left = 0;
    loop {
        let line = chat.line();
        if line == format!("{}: hello", chat.who) {
            break;
        }
        if line.ends_with(" has left") {
            left += 1;
        }
    }
    let waited = started.elapsed();
    let stall = natter::limits::PAUSE_STALL;
    assert!(
        waited >= stall - Duration::from_millis(300) && waited < natter::limits::LINGER,
        "resumed after {waited:?}: the pause should hold about {stall:?}"
    );
    // Closed as slow, announced as leaving, and nobody else: the chatter
    // is still here, and so is whichever stalled client the total could
    // spare once the biggest holder was gone.
    let stats = chat.stats();
    assert!(stats["read_pauses"] >= 1, "{stats:?}");
    assert!(left >= 1, "a stalled client was closed");
    assert_eq!(stats["slow_disconnects"] as usize, left, "{stats:?}");
    assert_eq!(stats["clients"] as usize, 3 - left, "{stats:?}");
}

#[test]
fn a_client_closed_with_unread_input_still_gets_its_last_output() {
    // The client asks for output, quits, and keeps typing; natter never reads
    // those last lines. Closing a socket with unread input sends a reset,
    // which would destroy output still in flight, so natter reads them away
    // first. The client reads only once natter has closed its side.
    let addr = start(natter::Config {
        rate: 0,
        ..config()
    });
    let mut watcher = Client::join(addr);
    // A small receive buffer, so most of its output still sits in natter's
    // kernel send buffer when natter closes the socket.
    let mut quitter = stalled_client(addr);
    watcher.expect(&format!("{} has arrived", quitter.who));
    let mut burst = "/help\n".repeat(50);
    burst.push_str("/quit\n");
    // More than one read takes: most of it stays unread in the kernel.
    burst.push_str(&"typed after quitting\n".repeat(2500));
    quitter.send(&burst);
    watcher.expect(&format!("{} has left", quitter.who));
    common::eventually("the quitter to be closed", || {
        watcher.stats()["clients"] == 1
    });
    let all = quitter.read_to_end();
    let help = natter::command::HELP.join("\n") + "\n";
    assert_eq!(String::from_utf8(all).unwrap(), help.repeat(50));
}
