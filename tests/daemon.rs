//! The daemon's behaviour as an operator sees it: signals (graceful shutdown,
//! the grace period, a second signal, SIGHUP), systemd's socket activation
//! and readiness protocols, and the `--metrics` endpoint scraped with a real
//! HTTP client. The signal and systemd tests run the `natter` binary as a
//! child process; the metrics tests run a server on a thread.
//!
//! Everything waits on bytes, log lines or process exit (each bounded by
//! `common::PATIENCE`), never on a bare sleep.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Daemon, PATIENCE, http_agent, scrape};
use natter::Config;

// ----- helpers --------------------------------------------------------------

/// `natter --listen 127.0.0.1:0 <args>` with an `info` log whatever the
/// caller's `RUST_LOG` (a chattier log could fill the stderr pipe).
fn natter(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_natter"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info");
    cmd
}

fn daemon(args: &[&str]) -> Daemon {
    Daemon::spawn(natter(args))
}

/// A path in the temp directory unique to this test process and `name`.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("natter-daemon-{}-{name}", std::process::id()))
}

/// The log lines not read yet, up to the end (call after the process exited).
fn rest_of_log(d: &mut Daemon) -> String {
    let mut rest = String::new();
    d.stderr.read_to_string(&mut rest).expect("read the log");
    rest
}

/// Waits for the process to exit and returns its exit code with the time it
/// took since `since`.
fn exit_code(d: &mut Daemon, since: Instant) -> (Option<i32>, Duration) {
    let status = d.wait();
    (status.code(), since.elapsed())
}

/// The number `N` in a log line `... N bytes unsent`.
fn unsent_bytes(line: &str) -> u64 {
    let before = line.split(" bytes unsent").next().unwrap();
    before
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no byte count in {line:?}"))
}

/// Lines of chat in one batch of [`backlog`]: 99 of [`FILLER`], then
/// `batch N`. About 10 KiB, well under one turn's read budget.
const BATCH: usize = 100;
const FILLER: &str = concat!(
    "xxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxx",
);

/// A client that joins with a tiny receive buffer and then reads nothing, and
/// a second client that sends `batches` batches of [`BATCH`] lines (the
/// server must run with `--rate 0`), each after the echo of the one before.
/// When this returns, the server has handled every line, and nearly all of
/// their copies for the slow client are still queued in the server.
fn backlog(addr: SocketAddr, batches: usize) -> (Client, Client) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).expect("connect");
    let mut slow = Client::from_stream(socket.into());
    let hello = slow.line();
    slow.who = hello
        .strip_prefix("You are ")
        .unwrap_or_else(|| panic!("{hello:?}"))
        .to_string();

    let mut sender = Client::join(addr);
    let mut batch = format!("{FILLER}\n").repeat(BATCH - 1);
    batch.push_str("batch ");
    for n in 0..batches {
        // Lockstep keeps the sender's bytes within one read budget; a
        // sender at full speed is `a_sender_at_full_speed_is_read_to_the_end`.
        sender.send(format!("{batch}{n}\n"));
        let end = format!("{}: batch {n}", sender.who);
        sender.until(|l| l == end);
    }
    (slow, sender)
}

/// Bytes queued for the slow client by [`backlog`] with `batches`: the
/// sender's arrival and every line of chat.
fn backlog_bytes(sender: &str, batches: usize) -> usize {
    let filler = sender.len() + 2 + FILLER.len() + 1;
    let ends: usize = (0..batches)
        .map(|n| format!("{sender}: batch {n}\n").len())
        .sum();
    format!("{sender} has arrived\n").len() + batches * (BATCH - 1) * filler + ends
}

// ----- SIGTERM, SIGINT, the grace period --------------------------------------

#[test]
fn sigterm_tells_every_client_then_closes_and_exits_0() {
    let mut d = daemon(&[]);
    let mut a = Client::join(d.addr);
    let mut b = Client::join(d.addr);
    a.expect(&format!("{} has arrived", b.who));
    let mut c = Client::join(d.addr);
    a.expect(&format!("{} has arrived", c.who));
    b.expect(&format!("{} has arrived", c.who));
    // Without --motd, SIGHUP only says so.
    d.signal("HUP");
    d.log_until("SIGHUP: no --motd to re-read");

    let t = Instant::now();
    d.signal("TERM");
    for client in [&mut a, &mut b, &mut c] {
        client.expect("*** server shutting down");
        client.expect_closed();
    }
    let (code, took) = exit_code(&mut d, t);
    assert_eq!(code, Some(0), "a graceful shutdown exits 0");
    assert!(
        took < Duration::from_millis(1500),
        "queues were empty, yet it waited for the grace (2s): {took:?}"
    );
    let log = rest_of_log(&mut d);
    assert!(log.contains("shutting down: 3 clients"), "{log}");
    assert!(
        log.contains("shutdown complete: all output delivered"),
        "{log}"
    );
}

#[test]
fn shutdown_keeps_flushing_queued_output_before_closing() {
    let mut d = daemon(&[
        "--sndbuf",
        "4096",
        "--max-output",
        "64MiB",
        "--shutdown-grace",
        "20s",
        "--rate",
        "0",
    ]);
    let (mut slow, mut sender) = backlog(d.addr, 100);
    d.signal("TERM");
    d.log_until("shutting down: 2 clients");
    sender.expect("*** server shutting down");
    sender.expect_closed();

    // The slow client starts reading only now: it still gets every line,
    // then the notice, then the end of the stream.
    let t = Instant::now();
    slow.expect(&format!("{} has arrived", sender.who));
    let filler = format!("{}: {FILLER}", sender.who);
    for n in 0..100 {
        for _ in 0..BATCH - 1 {
            slow.expect(&filler);
        }
        slow.expect(&format!("{}: batch {n}", sender.who));
    }
    slow.expect("*** server shutting down");
    slow.expect_closed();
    let (code, _) = exit_code(&mut d, t);
    assert_eq!(code, Some(0));
    let log = rest_of_log(&mut d);
    assert!(
        log.contains("shutdown complete: all output delivered"),
        "{log}"
    );
}

/// Spec: with a client that never reads, shutdown waits `--shutdown-grace`,
/// closes everything, exits 0 and logs the bytes left unsent.
#[test]
fn shutdown_grace_expires_and_the_log_reports_bytes_unsent() {
    let mut d = daemon(&[
        "--sndbuf",
        "4096",
        "--max-output",
        "64MiB",
        "--shutdown-grace",
        "500ms",
        "--rate",
        "0",
    ]);
    let (slow, mut sender) = backlog(d.addr, 400);
    let queued = backlog_bytes(&sender.who, 400) + "*** server shutting down\n".len();
    assert!(queued > 4 << 20);

    let t = Instant::now();
    d.signal("TERM");
    sender.expect("*** server shutting down");
    sender.expect_closed();
    let (code, took) = exit_code(&mut d, t);
    assert_eq!(code, Some(0), "running out of grace is still a clean exit");
    assert!(
        took >= Duration::from_millis(400),
        "exited before the grace was over: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "grace is 500ms, exit took {took:?}"
    );
    let log = rest_of_log(&mut d);
    assert!(log.contains("shutting down: 2 clients"), "{log}");
    assert!(
        !log.contains("all output delivered"),
        "megabytes were never read, yet the log says:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("shutdown grace over"))
        .unwrap_or_else(|| panic!("no report of unsent bytes in the log:\n{log}"));
    assert!(line.contains("closing 1 clients"), "{line}");
    // The slow client's kernel buffers took a few KiB at most.
    let unsent = unsent_bytes(line) as usize;
    assert!(
        unsent > queued - (256 << 10) && unsent <= queued,
        "{queued} bytes were queued for the slow client: {line}"
    );
    drop(slow);
}

#[test]
fn sigint_starts_shutdown_and_a_second_signal_exits_at_once_with_1() {
    let mut d = daemon(&[
        "--sndbuf",
        "4096",
        "--max-output",
        "64MiB",
        "--shutdown-grace",
        "60s",
        "--rate",
        "0",
    ]);
    let (slow, mut sender) = backlog(d.addr, 100);
    d.signal("INT");
    d.log_until("shutting down: 2 clients");
    sender.expect("*** server shutting down");
    sender.expect_closed();

    // Still running (the slow client holds it in its grace), but no longer
    // accepting.
    assert!(d.child.try_wait().unwrap().is_none());
    let refused = TcpStream::connect(d.addr).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

    let t = Instant::now();
    d.signal("TERM");
    let (code, took) = exit_code(&mut d, t);
    assert_eq!(code, Some(1), "a second signal exits with status 1");
    assert!(took < Duration::from_secs(5), "took {took:?} (grace 60s)");
    let log = rest_of_log(&mut d);
    let line = log
        .lines()
        .find(|l| l.contains("second signal: exiting now"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(unsent_bytes(line) > 0, "{line}");
    drop(slow);
}

// ----- SIGHUP -------------------------------------------------------------------

#[test]
fn sighup_rereads_the_motd_and_keeps_every_client() {
    let motd = temp_path("motd");
    std::fs::write(&motd, "welcome, version one\n").unwrap();
    let mut d = daemon(&["--motd", motd.to_str().unwrap()]);
    let mut a = Client::join(d.addr);
    a.expect("welcome, version one");

    std::fs::write(&motd, "welcome, version two\nsecond line\n").unwrap();
    d.signal("HUP");
    let logged = d.log_until("SIGHUP");
    assert!(logged.contains("re-read motd"), "{logged}");
    assert!(logged.contains(motd.to_str().unwrap()), "{logged}");

    let mut b = Client::join(d.addr);
    b.expect("welcome, version two");
    b.expect("second line");
    a.expect(&format!("{} has arrived", b.who));
    a.say("still here");
    let line = format!("{}: still here", a.who);
    a.expect(&line);
    b.expect(&line);
    b.say("hello");
    let line = format!("{}: hello", b.who);
    a.expect(&line);
    b.expect(&line);

    // An unreadable motd keeps the old one, and still drops nobody.
    std::fs::remove_file(&motd).unwrap();
    d.signal("HUP");
    let logged = d.log_until("SIGHUP");
    assert!(logged.contains("cannot re-read motd"), "{logged}");
    let mut c = Client::join(d.addr);
    c.expect("welcome, version two");
    c.expect("second line");
    a.say("and now?");
    c.expect(&format!("{}: and now?", a.who));

    let t = Instant::now();
    d.signal("TERM");
    for client in [&mut a, &mut b, &mut c] {
        client.until(|l| l == "*** server shutting down");
        client.expect_closed();
    }
    assert_eq!(exit_code(&mut d, t).0, Some(0));
    let log = rest_of_log(&mut d);
    assert!(
        !log.contains(" left: "),
        "nobody left before shutdown:\n{log}"
    );
}

// ----- systemd ------------------------------------------------------------------

#[test]
fn socket_activation_serves_the_inherited_listener() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = OwnedFd::from(listener);
    // systemd's protocol: the socket is descriptor 3, LISTEN_FDS counts from
    // there, LISTEN_PID names the process they are for (the shell's PID,
    // which `exec` keeps).
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@" 3<&0 0</dev/null"#)
        .arg(env!("CARGO_BIN_EXE_natter"))
        // Were the descriptor ignored, natter would bind another port.
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::from(fd));
    let mut d = Daemon::spawn(cmd);
    assert_eq!(d.addr, addr, "natter must serve the socket it was given");

    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    a.expect(&format!("{} has arrived", b.who));
    b.say("over the inherited socket");
    let line = format!("{}: over the inherited socket", b.who);
    a.expect(&line);
    b.expect(&line);

    let t = Instant::now();
    d.signal("TERM");
    a.expect("*** server shutting down");
    b.expect("*** server shutting down");
    assert_eq!(exit_code(&mut d, t).0, Some(0));
}

/// Receives one datagram as text.
fn recv_text(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification from natter");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn notify_socket_gets_ready_once_listening_and_stopping_at_shutdown() {
    let path = temp_path("notify.sock");
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();

    let mut cmd = natter(&[]);
    cmd.env("NOTIFY_SOCKET", &path);
    let mut d = Daemon::spawn(cmd);
    let ready = recv_text(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=listening on {}", d.addr)),
        "{ready:?}"
    );
    // Ready means ready: a client is served at once.
    let mut c = Client::join(d.addr);

    let t = Instant::now();
    d.signal("TERM");
    assert_eq!(recv_text(&socket), "STOPPING=1");
    c.expect("*** server shutting down");
    c.expect_closed();
    assert_eq!(exit_code(&mut d, t).0, Some(0));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn notify_socket_may_be_abstract() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("natter-daemon-{}-notify", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();

    let mut cmd = natter(&[]);
    cmd.env("NOTIFY_SOCKET", format!("@{name}"));
    let mut d = Daemon::spawn(cmd);
    assert!(recv_text(&socket).lines().any(|l| l == "READY=1"));
    let t = Instant::now();
    d.signal("TERM");
    assert_eq!(recv_text(&socket), "STOPPING=1");
    assert_eq!(exit_code(&mut d, t).0, Some(0));
}

// ----- metrics --------------------------------------------------------------------

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, name: &str) -> u64 {
    after[name] - before[name]
}

fn metrics_server() -> (SocketAddr, SocketAddr) {
    common::start_with_metrics(Config {
        metrics: Some("127.0.0.1:0".into()),
        rate: 0,
        ..common::config()
    })
}

const METRICS: [&str; 15] = [
    "natter_clients",
    "natter_accepted_connections_total",
    "natter_lines_in_total",
    "natter_lines_out_total",
    "natter_bytes_out_total",
    "natter_queued_output_bytes",
    "natter_short_writes_total",
    "natter_slow_client_disconnects_total",
    "natter_skipped_lines_total",
    "natter_cut_lines_total",
    "natter_rate_limited_reads_total",
    "natter_read_pauses_total",
    "natter_reading_paused",
    "natter_fd_exhaustion_total",
    "natter_resident_memory_bytes",
];

#[test]
fn metrics_count_connections_lines_and_bytes() {
    let (addr, metrics) = metrics_server();
    let s0 = scrape(metrics);
    for name in METRICS {
        assert!(s0.contains_key(name), "{name} missing");
    }
    for reason in [
        "eof", "quit", "error", "slow", "idle", "full", "per_ip", "busy", "shutdown",
    ] {
        let name = format!("natter_closed_connections_total{{reason=\"{reason}\"}}");
        assert!(s0.contains_key(&name), "{name} missing");
    }
    assert_eq!(s0["natter_clients"], 0);
    assert!(s0["natter_resident_memory_bytes"] > 0);

    // Three clients join; each reads every line meant for it.
    let mut a = Client::join(addr);
    let mut b = Client::join(addr);
    let b_arrived = format!("{} has arrived", b.who);
    a.expect(&b_arrived);
    let mut c = Client::join(addr);
    let c_arrived = format!("{} has arrived", c.who);
    a.expect(&c_arrived);
    b.expect(&c_arrived);
    let s1 = scrape(metrics);
    assert_eq!(delta(&s0, &s1, "natter_accepted_connections_total"), 3);
    assert_eq!(s1["natter_clients"], 3);
    assert_eq!(delta(&s0, &s1, "natter_lines_in_total"), 0);
    // Three greetings and three arrivals (a hears two, b one).
    assert_eq!(delta(&s0, &s1, "natter_lines_out_total"), 6);
    let greetings: usize = [&a, &b, &c]
        .iter()
        .map(|x| format!("You are {}\n", x.who).len())
        .sum();
    let arrivals = b_arrived.len() + 2 * c_arrived.len() + 3;
    assert_eq!(
        delta(&s0, &s1, "natter_bytes_out_total"),
        (greetings + arrivals) as u64
    );

    // K lines from one client reach all three.
    const K: usize = 25;
    let lines: Vec<String> = (0..K).map(|i| format!("line number {i}")).collect();
    a.send(lines.iter().map(|l| format!("{l}\n")).collect::<String>());
    let sender = a.who.clone();
    for client in [&mut a, &mut b, &mut c] {
        for l in &lines {
            client.expect(&format!("{sender}: {l}"));
        }
    }
    let s2 = scrape(metrics);
    assert_eq!(delta(&s1, &s2, "natter_lines_in_total"), K as u64);
    assert_eq!(delta(&s1, &s2, "natter_lines_out_total"), 3 * K as u64);
    let chat_bytes: usize = lines.iter().map(|l| a.who.len() + 2 + l.len() + 1).sum();
    assert_eq!(
        delta(&s1, &s2, "natter_bytes_out_total"),
        3 * chat_bytes as u64
    );
    assert_eq!(delta(&s1, &s2, "natter_accepted_connections_total"), 0);
    assert_eq!(s2["natter_queued_output_bytes"], 0, "everything was read");

    // One client quits.
    c.say("/quit");
    c.expect_closed();
    let c_left = format!("{} has left", c.who);
    a.expect(&c_left);
    b.expect(&c_left);
    let s3 = scrape(metrics);
    assert_eq!(s3["natter_clients"], 2);
    assert_eq!(
        delta(&s2, &s3, "natter_closed_connections_total{reason=\"quit\"}"),
        1
    );
    assert_eq!(delta(&s2, &s3, "natter_lines_in_total"), 1);
    for reason in ["eof", "error", "slow", "idle", "shutdown"] {
        let name = format!("natter_closed_connections_total{{reason=\"{reason}\"}}");
        assert_eq!(s3[&name], 0, "{name}");
    }
    assert_eq!(s3["natter_slow_client_disconnects_total"], 0);
    assert_eq!(s3["natter_rate_limited_reads_total"], 0);
}

/// Sends `request` on a fresh connection and reads until the server closes
/// it. A reset counts as closed (the server may close with part of an
/// oversized request unread); a timeout fails the test.
fn raw_http(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request).expect("send the request");
    common::read_until_closed(&mut stream)
}

#[test]
fn metrics_answers_404_elsewhere_and_closes_after_each_response() {
    let (_, metrics) = metrics_server();
    let mut response = http_agent()
        .get(format!("http://{metrics}/"))
        .call()
        .expect("request");
    assert_eq!(response.status().as_u16(), 404);
    let _ = response.body_mut().read_to_string();
    let response = http_agent()
        .get(format!("http://{metrics}/metrics/extra"))
        .call()
        .expect("request");
    assert_eq!(response.status().as_u16(), 404);

    // One request per connection: the server closes after answering, even
    // when the client asked to keep the connection alive.
    let response = raw_http(
        metrics,
        b"GET /metrics HTTP/1.1\r\nHost: natter\r\nConnection: keep-alive\r\n\r\n",
    );
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert!(body.contains("\nnatter_clients 0\n"), "{body}");

    let response = raw_http(metrics, b"GET /nothing HTTP/1.1\r\nHost: natter\r\n\r\n");
    assert!(response.starts_with(b"HTTP/1.1 404 "), "{response:?}");
    let response = raw_http(metrics, b"POST /metrics HTTP/1.1\r\nHost: natter\r\n\r\n");
    assert!(response.starts_with(b"HTTP/1.1 405 "), "{response:?}");
}

#[test]
fn metrics_answers_431_to_oversized_headers_and_closes() {
    let (_, metrics) = metrics_server();
    // Few headers, but 16 KiB of them: over the 8 KiB cap.
    let mut request = b"GET /metrics HTTP/1.1\r\nHost: natter\r\n".to_vec();
    for name in ["X-One", "X-Two", "X-Three", "X-Four"] {
        request.extend_from_slice(format!("{name}: {}\r\n", "a".repeat(4096)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    assert!(request.len() > 16 << 10);
    let response = raw_http(metrics, &request);
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );

    // Headers that never end are cut off the same way.
    let mut endless = b"GET /metrics HTTP/1.1\r\n".to_vec();
    endless.extend_from_slice(format!("X-Endless: {}", "b".repeat(9000)).as_bytes());
    let response = raw_http(metrics, &endless);
    assert!(response.starts_with(b"HTTP/1.1 431 "), "{response:?}");

    // And the endpoint still serves.
    assert_eq!(scrape(metrics)["natter_clients"], 0);
}

// ----- reading at full speed ---------------------------------------------------

/// A client that sends megabytes at full speed (as a paste or a script does)
/// must be read to the end, however its bytes fall into turns: a read that
/// used up its per-turn budget must not be forgotten, or once the socket
/// buffers fill no new edge comes and the client stalls for good. (`backlog`
/// sends in lockstep so that the shutdown tests do not depend on this.)
#[test]
fn a_sender_at_full_speed_is_read_to_the_end() {
    let addr = common::start(Config {
        rate: 0,
        ..common::config()
    });
    let mut sender = Client::join(addr);
    sender
        .stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = sender.stream().try_clone().unwrap();
    writer.set_write_timeout(Some(PATIENCE)).unwrap();
    const LINES: usize = 40_000; // 4 MB
    let writing = std::thread::spawn(move || {
        let batch = format!("{FILLER}\n").repeat(BATCH);
        for _ in 0..LINES / BATCH {
            if writer.write_all(batch.as_bytes()).is_err() {
                return false;
            }
        }
        writer.write_all(b"the end\n").is_ok()
    });
    let filler = format!("{}: {FILLER}\n", sender.who);
    let mut line = Vec::new();
    for got in 0..LINES {
        line.clear();
        match sender.reader.read_until(b'\n', &mut line) {
            Ok(_) => assert_eq!(line, filler.as_bytes(), "line {got}"),
            Err(e) if common::is_timeout(&e) => {
                panic!("stalled: {got} of {LINES} lines came back, then nothing for 10s")
            }
            Err(e) => panic!("{e}"),
        }
    }
    sender.expect(&format!("{}: the end", sender.who));
    assert!(writing.join().unwrap());
}

/// Reads until EOF or reset; true if the peer closed within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn metrics_connections_are_capped_in_number_per_source_and_in_time() {
    use natter::limits::{MAX_METRICS_CONNS, MAX_METRICS_PER_SOURCE, METRICS_HEAD_TIMEOUT_MS};
    let (_, metrics) = metrics_server();
    let started = Instant::now();
    // Connections that never send a request: MAX_METRICS_PER_SOURCE from
    // each of several sources, up to MAX_METRICS_CONNS in all.
    let sources = MAX_METRICS_CONNS / MAX_METRICS_PER_SOURCE;
    let mut idle: Vec<TcpStream> = (0..MAX_METRICS_CONNS)
        .map(|i| common::connect_from(&format!("127.0.0.{}", 2 + i % sources), metrics))
        .collect();
    // One more from a source that has its share is closed at once; so is
    // one from a new source once the whole cap is taken. (Each also shows
    // the ones before it were accepted.)
    let mut same = common::connect_from("127.0.0.2", metrics);
    assert!(
        closed_within(&mut same, Duration::from_secs(3)),
        "a connection over the per-source cap is closed at once"
    );
    let mut extra = common::connect_from("127.0.0.100", metrics);
    assert!(
        closed_within(&mut extra, Duration::from_secs(3)),
        "a connection over the cap is closed at once"
    );
    // The idle ones are closed when the time for a request head is up.
    let head = Duration::from_millis(METRICS_HEAD_TIMEOUT_MS);
    for s in &mut idle {
        assert!(
            closed_within(s, head + PATIENCE),
            "idle metrics connection kept"
        );
    }
    let waited = started.elapsed();
    assert!(waited >= head - Duration::from_millis(100), "{waited:?}");
    // Then the endpoint serves again.
    assert_eq!(scrape(metrics)["natter_clients"], 0);
}

/// Sixteen slow connections (one byte a second, reconnecting when closed)
/// from two other addresses: every scrape from the scraper's address gets
/// its answer, at once.
#[test]
fn slow_metrics_clients_elsewhere_never_keep_a_scraper_out() {
    let (_, metrics) = metrics_server();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attackers: Vec<_> = (0..16)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let source = format!("127.0.0.{}", 2 + i % 2);
                let mut conn = common::connect_from(&source, metrics);
                let mut sent = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if conn.write_all(b"G").is_err() {
                        conn = common::connect_from(&source, metrics);
                    }
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                sent
            })
        })
        .collect();
    // Let the attackers take their slots.
    std::thread::sleep(Duration::from_millis(500));
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let asked = Instant::now();
        assert_eq!(scrape(metrics)["natter_clients"], 0);
        slowest = slowest.max(asked.elapsed());
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in attackers {
        assert!(a.join().unwrap() > 0);
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a scrape took {slowest:?}"
    );
}

#[test]
fn an_unterminated_quit_at_end_of_input_counts_once_as_a_quit() {
    // `printf '/quit gone' | nc -N host port`: the last line has no newline
    // and end of input follows it. It is one departure, for one reason.
    let (chat, metrics) = metrics_server();
    let mut watcher = Client::join(chat);
    let mut once = Client::join(chat);
    watcher.expect(&format!("{} has arrived", once.who));
    once.send("/quit gone");
    once.finish_sending();
    assert_eq!(once.read_to_end(), b"");
    watcher.expect(&format!("{} has left (gone)", once.who));
    common::eventually("the close to be counted", || {
        scrape(metrics)["natter_clients"] == 1
    });
    let after = scrape(metrics);
    assert_eq!(after["natter_closed_connections_total{reason=\"quit\"}"], 1);
    assert_eq!(after["natter_closed_connections_total{reason=\"eof\"}"], 0);
    // Nothing more was announced: the next line is this one.
    watcher.say("still here");
    watcher.expect(&format!("{}: still here", watcher.who));
}

// ----- refusing to start --------------------------------------------------------

/// Runs natter with `args` (and `stdin` as descriptor 3 when socket
/// activation is played) and expects it to refuse to start: returns its
/// exit code and everything it printed.
fn refused(args: &[&str], inherited: Option<OwnedFd>) -> (Option<i32>, String) {
    let mut cmd = Command::new("sh");
    let script = if inherited.is_some() {
        r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@" 3<&0 0</dev/null"#
    } else {
        r#"exec "$0" "$@""#
    };
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_natter"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(fd) = inherited {
        cmd.stdin(Stdio::from(fd));
    }
    let child = cmd.spawn().expect("spawn natter");
    let out = child.wait_with_output().expect("natter exits");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_up_errors_name_the_flag_and_the_value() {
    let (code, log) = refused(&["--listen", "127.0.0.1"], None);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("cannot start: --listen 127.0.0.1: invalid socket address"),
        "{log}"
    );
    let (code, log) = refused(&["--listen", "127.0.0.1:0", "--metrics", "nonsense"], None);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("--metrics nonsense: invalid socket address"),
        "{log}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, log) = refused(&["--listen", &addr], None);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("--listen {addr}: Address already in use")),
        "{log}"
    );
}

#[test]
fn socket_activation_refuses_a_socket_that_is_not_listening() {
    // Bound but never listening, as a misconfigured unit could pass.
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let (code, log) = refused(&["--listen", "127.0.0.1:0"], Some(OwnedFd::from(bound)));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("not a listening socket"), "{log}");
    assert!(!log.contains("listening on"), "{log}");
    // A connected socket, as systemd passes with `Accept=yes`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (code, log) = refused(&["--listen", "127.0.0.1:0"], Some(OwnedFd::from(connected)));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("not a listening socket"), "{log}");
}

#[test]
fn sigusr1_and_sigusr2_are_ignored_and_logged() {
    let mut d = Daemon::start(&[]);
    let mut a = Client::join(d.addr);
    d.signal("USR1");
    d.log_until("signal 10 ignored");
    d.signal("USR2");
    d.log_until("signal 12 ignored");
    a.say("still here");
    a.expect(&format!("{}: still here", a.who));
    assert!(d.child.try_wait().unwrap().is_none(), "natter is running");
}

#[test]
fn a_flood_of_sighups_is_logged_a_few_times_a_second() {
    let mut d = Daemon::start(&[]);
    let started = Instant::now();
    for _ in 0..200 {
        d.signal("HUP");
    }
    let took = started.elapsed();
    // A marker after the flood: a client's arrival is logged once natter has
    // handled everything before it.
    let _marker = Client::join(d.addr);
    let mut logged = 0;
    loop {
        let mut line = String::new();
        assert!(d.stderr.read_line(&mut line).unwrap() > 0, "log ended");
        if line.contains("SIGHUP") {
            logged += 1;
        }
        if line.contains(" connected (") {
            break;
        }
    }
    // Two a second pass the gate (and one summing up the rest).
    let allowed = 3 * (took.as_secs() + 2);
    assert!(
        (1..=allowed).contains(&logged),
        "{logged} SIGHUP lines for 200 signals in {took:?}"
    );
}
