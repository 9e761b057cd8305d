//! TLS clients on real sockets, with certificates made at test time: the
//! seed transcript and a mixed room byte for byte; garbage, plain text and
//! stalled handshakes at the TLS port; a TLS reader that stops reading;
//! certificate reload on SIGHUP; every startup error; and the command-line
//! clients people use (`openssl s_client`, `ncat --ssl`, `socat`).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tls::{self, Pair, TempDir, TlsClient};
use common::{Client, Daemon, PATIENCE, read_until_closed};

/// Starts the natter binary with a TLS listener serving `pair`, and `args`.
fn daemon(pair: &Pair, args: &[&str]) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_natter"));
    cmd.args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&pair.cert)
        .arg("--tls-key")
        .arg(&pair.key)
        .args(args);
    Daemon::spawn(cmd)
}

/// A handshake record holding the start of a message, then junk: found by
/// `fuzz/fuzz_targets/tls_accept.rs`.
const SPLIT_HELLO_THEN_JUNK: &[u8] = include_bytes!("testdata/tls-split-hello-then-junk.bin");

/// True if `bytes` begin with a TLS alert record (content type 21).
fn starts_with_alert(bytes: &[u8]) -> bool {
    bytes.len() >= 7 && bytes[0] == 0x15 && bytes[1] == 0x03
}

#[test]
fn the_seed_transcript_over_tls() {
    let dir = TempDir::new("seed");
    let pair = tls::pair(&dir.0, "seed", 1);
    let (_, addr) = tls::start(tls::config(&pair));
    common::play_seed_transcript(|| tls::connect(addr, &pair));
}

#[test]
fn tls_and_plain_clients_share_one_room_byte_for_byte() {
    let dir = TempDir::new("mixed");
    let pair = tls::pair(&dir.0, "mixed", 1);
    let (plain_addr, tls_addr) = tls::start(natter::Config {
        max_line: 64 * 1024,
        rate: 0,
        ..tls::config(&pair)
    });
    let mut a = tls::join(tls_addr, &pair);
    let mut b = tls::join(tls_addr, &pair);
    a.expect(&format!("{} has arrived", b.who));
    let mut p = Client::join(plain_addr);
    a.expect(&format!("{} has arrived", p.who));
    b.expect(&format!("{} has arrived", p.who));

    // Short lines, UTF-8, a line longer than one TLS record, and a burst of
    // many lines that the server coalesces into few records: every client,
    // TLS or not, gets the same bytes in the same order.
    let long = "x".repeat(40_000);
    let burst: Vec<String> = (0..500).map(|i| format!("burst {i} ünïcødé")).collect();
    a.say("hello from TLS a");
    p.say("hello from plain");
    b.say(&long);
    b.send(burst.iter().map(|l| format!("{l}\n")).collect::<String>());
    let mut want = vec![
        format!("{}: hello from TLS a", a.who),
        format!("{}: hello from plain", p.who),
        format!("{}: {long}", b.who),
    ];
    want.extend(burst.iter().map(|l| format!("{}: {l}", b.who)));
    let want: Vec<u8> = want
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let read_all = |c: &mut dyn Read| {
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).expect("every line");
        got
    };
    assert!(read_all(&mut a.reader) == want, "TLS client a");
    assert!(read_all(&mut b.reader) == want, "TLS client b");
    assert!(read_all(&mut p.reader) == want, "plain client");

    // Commands and names work the same over TLS.
    a.say("/nick alice");
    let renamed = format!("{} is now known as alice", a.who);
    for c in [&mut a as &mut dyn LineReader, &mut b, &mut p] {
        assert_eq!(c.next_line(), renamed);
    }
}

/// One line from any test client, plain or TLS.
trait LineReader {
    fn next_line(&mut self) -> String;
}

impl<S: common::LineStream> LineReader for Client<S> {
    fn next_line(&mut self) -> String {
        self.line()
    }
}

#[test]
fn garbage_and_plain_text_at_the_tls_port_get_an_alert_and_a_close_and_nobody_notices() {
    let dir = TempDir::new("garbage");
    let pair = tls::pair(&dir.0, "garbage", 1);
    let mut d = daemon(&pair, &[]);
    let tls_addr = d.tls_addr.unwrap();
    let mut watcher = Client::join(d.addr);
    let mut member = tls::join(tls_addr, &pair);
    watcher.expect(&format!("{} has arrived", member.who));

    // Plain text, as a netcat user who picked the wrong port would send.
    let mut plain = TcpStream::connect(tls_addr).unwrap();
    plain.write_all(b"hello, is this the chat?\n").unwrap();
    let answer = read_until_closed(&mut plain);
    assert!(starts_with_alert(&answer), "{answer:?}");
    let warning = d.log_until("TLS failed");
    assert!(warning.contains("not a TLS handshake"), "{warning}");

    // A record header that announces more than any record may hold.
    let mut huge = TcpStream::connect(tls_addr).unwrap();
    huge.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    assert!(starts_with_alert(&read_until_closed(&mut huge)));

    // The start of a handshake message, then a bad record: this made rustls
    // panic (and so the daemon end) until `TlsSession::fail` learned to
    // offer it the input again. Found by fuzz/fuzz_targets/tls_accept.rs.
    let mut split = TcpStream::connect(tls_addr).unwrap();
    split.write_all(SPLIT_HELLO_THEN_JUNK).unwrap();
    assert!(starts_with_alert(&read_until_closed(&mut split)));

    // Random bytes (a fixed sequence, so a failure can be replayed).
    let mut x: u32 = 0x2545_f491;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut random = TcpStream::connect(tls_addr).unwrap();
    // The server may close before taking it all; that is its right.
    let _ = random.write_all(&noise);
    let answer = read_until_closed(&mut random);
    assert!(
        answer.is_empty() || starts_with_alert(&answer),
        "{answer:?}"
    );

    // Nobody noticed: the next line either member sees is this one.
    watcher.say("still here");
    let want = format!("{}: still here", watcher.who);
    watcher.expect(&want);
    member.expect(&want);
}

#[test]
fn a_stalled_handshake_counts_against_the_limits_until_its_deadline_closes_it() {
    let dir = TempDir::new("stall");
    let pair = tls::pair(&dir.0, "stall", 1);
    let (plain_addr, tls_addr) = tls::start(natter::Config {
        max_per_ip: 2,
        tls_handshake_timeout: Duration::from_millis(500),
        ..tls::config(&pair)
    });
    // Two half-open handshakes: one silent, one that stops mid-ClientHello.
    let silent = TcpStream::connect(tls_addr).unwrap();
    let mut partial = TcpStream::connect(tls_addr).unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01])
        .unwrap();
    let started = Instant::now();
    // They hold this address's two places: a third client is refused.
    let mut refused = Client::connect(plain_addr);
    refused.expect("*** too many connections from your address");
    refused.expect_closed();
    // Each is closed at its deadline, not before.
    for mut stalled in [silent, partial] {
        read_until_closed(&mut stalled);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed after {:?}, before the 500 ms deadline",
        started.elapsed()
    );
    // Their places are free again.
    let mut back = Client::join(plain_addr);
    back.say("in");
    back.expect(&format!("{}: in", back.who));
}

#[test]
fn a_handshake_counts_against_max_clients() {
    let dir = TempDir::new("full");
    let pair = tls::pair(&dir.0, "full", 1);
    let (plain_addr, tls_addr) = tls::start(natter::Config {
        max_clients: Some(1),
        ..tls::config(&pair)
    });
    let _handshaking = TcpStream::connect(tls_addr).unwrap();
    let mut refused = Client::connect(plain_addr);
    refused.expect("*** server full");
    // A TLS client refused for the same reason is closed without plain text.
    let mut tls_refused = TcpStream::connect(tls_addr).unwrap();
    assert_eq!(read_until_closed(&mut tls_refused), b"");
}

/// A TLS client whose receive buffer is a few KiB, greeted, and then never
/// read from again by the test.
fn stalled_tls_client(addr: SocketAddr, pair: &Pair) -> TlsClient {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let tcp = TcpStream::from(socket);
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(tls::client_config(pair), name).unwrap();
    Client::over(rustls::StreamOwned::new(conn, tcp)).greeted()
}

#[test]
fn a_tls_client_that_never_reads_is_disconnected_as_slow_and_the_others_go_on() {
    let dir = TempDir::new("slow");
    let pair = tls::pair(&dir.0, "slow", 1);
    let mut d = daemon(
        &pair,
        &["--rate", "0", "--sndbuf", "32KiB", "--max-output", "256KiB"],
    );
    let mut slow = stalled_tls_client(d.tls_addr.unwrap(), &pair);
    let mut talker = Client::join(d.addr);
    let mut listener = tls::join(d.tls_addr.unwrap(), &pair);
    talker.expect(&format!("{} has arrived", listener.who));
    let left = format!("{} has left", slow.who);
    let line = "z".repeat(1000);
    // Rounds of 100 KB; the talker and the listener read every round, the
    // slow client nothing.
    let mut rounds = 0;
    'chat: loop {
        rounds += 1;
        assert!(rounds <= 30, "the slow TLS client was never disconnected");
        talker.send(format!("{line}\n").repeat(100));
        let mut told = false;
        for c in [&mut talker as &mut dyn LineReader, &mut listener] {
            let mut got = 0;
            while got < 100 {
                let l = c.next_line();
                if l.ends_with(&line) {
                    got += 1;
                } else {
                    told |= l == left;
                }
            }
        }
        if told {
            break 'chat;
        }
    }
    assert!(
        rounds >= 3,
        "cut after {rounds} rounds, before 256 KiB queued"
    );
    let warning = d.log_until("over --max-output");
    assert!(warning.contains(&slow.who), "{warning}");
    // The others go on, and memory stayed bounded.
    listener.say("after");
    talker.until(|l| l.ends_with(": after"));
    assert_eq!(talker.stats()["slow_disconnects"], 1);
    assert!(d.rss_kib() < 32 * 1024, "RSS {} KiB", d.rss_kib());
    // The slow client got a prefix of the stream, then the close.
    let mut rest = Vec::new();
    let end = slow.reader.read_to_end(&mut rest);
    assert!(
        end.is_ok() || end.as_ref().unwrap_err().kind() != ErrorKind::WouldBlock,
        "still open: {end:?}"
    );
    // Never more than its --max-output (the rest was dropped with it), and
    // what it got is the talker's lines, whole and in order of sending.
    assert!(rest.len() <= 256 * 1024, "{}", rest.len());
    let text = String::from_utf8_lossy(&rest);
    let mut complete: Vec<&str> = text.split('\n').collect();
    complete.pop(); // whatever followed the last newline
    let said = format!("{}: {line}", talker.who);
    let lines: Vec<&&str> = complete
        .iter()
        .filter(|l| !l.ends_with(" has arrived"))
        .collect();
    assert!(!lines.is_empty(), "no line reached the slow client");
    assert!(lines.iter().all(|l| **l == said), "{:?}", &lines[..1]);
}

#[test]
fn sighup_reloads_the_certificate_for_new_handshakes_only() {
    let dir = TempDir::new("reload");
    let first = tls::pair(&dir.0, "first", 1);
    let mut d = daemon(&first, &[]);
    let addr = d.tls_addr.unwrap();
    let mut old = tls::join(addr, &first);
    assert!(tls::server_cert(&old) == first.der);

    // Replace the files in place, as certbot's renewal hook would.
    let second = tls::pair(&dir.0, "second", 2);
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    d.signal("HUP");
    d.log_until("re-read the TLS certificate");
    let mut new = tls::join(addr, &second);
    assert!(
        tls::server_cert(&new) == second.der,
        "new handshakes use the new pair"
    );
    // The established client is untouched.
    old.expect(&format!("{} has arrived", new.who));
    old.say("still talking");
    new.expect(&format!("{}: still talking", old.who));

    // A broken key is logged, and the pair in use stays.
    std::fs::write(&first.key, "not a key\n").unwrap();
    d.signal("HUP");
    let warning = d.log_until("cannot re-read the TLS pair");
    assert!(warning.contains("--tls-key"), "{warning}");
    assert!(warning.contains("keeping the old one"), "{warning}");
    let again = tls::join(addr, &second);
    assert!(tls::server_cert(&again) == second.der);
}

/// Runs natter with `args`; returns its exit status and its stderr.
fn run(args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_startup_error_is_one_line_naming_its_flag_and_file() {
    let dir = TempDir::new("errors");
    let good = tls::pair(&dir.0, "good", 1);
    let other = tls::pair(&dir.0, "other", 2);
    let empty = dir.0.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.0.join("missing.pem");
    let (cert, key) = (good.cert.as_os_str(), good.key.as_os_str());
    let listen: [&std::ffi::OsStr; 4] = [
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ];
    let with = |cert: &std::path::Path, key: &std::path::Path| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = listen.iter().map(|s| s.to_os_string()).collect();
        a.extend([
            "--tls-cert".into(),
            cert.into(),
            "--tls-key".into(),
            key.into(),
        ]);
        a
    };
    let cases: Vec<(Vec<std::ffi::OsString>, Vec<String>)> = vec![
        (
            listen.iter().map(|s| s.to_os_string()).collect(),
            vec!["--tls-listen needs --tls-cert FILE and --tls-key FILE".into()],
        ),
        (
            vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--tls-cert".into(),
                cert.into(),
                "--tls-key".into(),
                key.into(),
            ],
            vec!["--tls-cert and --tls-key need --tls-listen".into()],
        ),
        (
            vec!["--listen".into(), "none".into()],
            vec!["--listen none".into(), "--tls-listen".into()],
        ),
        (
            with(&missing, &good.key),
            vec![format!("--tls-cert {}", missing.display())],
        ),
        (
            with(&dir.0, &good.key),
            vec![format!("--tls-cert {}", dir.0.display())],
        ),
        (
            with(&empty, &good.key),
            vec![format!("--tls-cert {}: no certificate", empty.display())],
        ),
        (
            with(&good.cert, &missing),
            vec![format!("--tls-key {}", missing.display())],
        ),
        (
            with(&good.cert, &empty),
            vec![format!(
                "--tls-key {}: no private key in the file",
                empty.display()
            )],
        ),
        (
            with(&good.cert, &other.key),
            vec![format!(
                "--tls-key {}: the key does not match",
                other.key.display()
            )],
        ),
        (
            [
                with(&good.cert, &good.key),
                vec!["--tls-handshake-timeout".into(), "0s".into()],
            ]
            .concat(),
            vec!["--tls-handshake-timeout".into()],
        ),
    ];
    for (args, wants) in cases {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (status, stderr) = run(&args);
        assert!(!status.success(), "{args:?} started");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("ERROR") || l.starts_with("natter:"))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        for want in &wants {
            assert!(
                errors[0].contains(want.as_str()),
                "{args:?}: {want:?} not in {stderr}"
            );
        }
    }
}

#[test]
fn an_expired_certificate_is_a_warning_and_the_server_still_serves() {
    let dir = TempDir::new("expired");
    let old = tls::pair_valid(&dir.0, "expired", 1, (2001, 2002));
    let d = daemon(&old, &[]);
    let warning = d.early_log.lines().find(|l| l.contains("WARN"));
    let warning = warning.unwrap_or_else(|| panic!("no warning in {:?}", d.early_log));
    let want = format!(
        "--tls-cert {}: the certificate expired on 2002-01-01",
        old.cert.display()
    );
    assert!(warning.contains(&want), "{warning}");
    // Clients decide whether to accept it; this one's clock says 2001.
    let config = tls::client_config_in(&old, 1_000_000_000);
    let mut c = tls::connect_with(d.tls_addr.unwrap(), config).greeted();
    c.say("up");
    c.expect(&format!("{}: up", c.who));
}

/// A line sent by a command-line TLS client reaches a plain client, even
/// one starting with `Q` or `R` (which `openssl s_client` without `-quiet`
/// would take as a command).
fn command_line_client_chats(program: &str, args: &[String]) {
    let dir = TempDir::new(program);
    let pair = tls::pair(&dir.0, program, 1);
    let (plain_addr, tls_addr) = tls::start(tls::config(&pair));
    let mut watcher = Client::join(plain_addr);
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("PORT", &tls_addr.port().to_string()))
        .collect();
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed for this test (.ci/run installs it): {e}"));
    let arrived = watcher.until(|l| l.ends_with(" has arrived"));
    let who = arrived.trim_end_matches(" has arrived").to_string();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Quite so\nRight you are\n").unwrap();
    stdin.flush().unwrap();
    watcher.expect(&format!("{who}: Quite so"));
    watcher.expect(&format!("{who}: Right you are"));
    watcher.say("hello back");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + PATIENCE;
    while !seen.contains("hello back") {
        assert!(
            Instant::now() < deadline,
            "{program} never printed the reply: {seen:?}"
        );
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
            panic!("{program} ended early: {seen:?}");
        }
        seen.push_str(&line);
    }
    assert!(seen.starts_with(&format!("You are {who}\n")), "{seen:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn openssl_s_client_quiet_is_a_client() {
    let args = ["s_client", "-quiet", "-connect", "127.0.0.1:PORT"];
    command_line_client_chats("openssl", &args.map(String::from));
}

#[test]
fn ncat_ssl_is_a_client() {
    command_line_client_chats("ncat", &["--ssl", "127.0.0.1", "PORT"].map(String::from));
}

#[test]
fn socat_openssl_is_a_client() {
    let args = ["-", "OPENSSL:127.0.0.1:PORT,verify=0"];
    command_line_client_chats("socat", &args.map(String::from));
}
