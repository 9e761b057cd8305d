//! Shared helpers for the integration tests: a server on `127.0.0.1:0` per
//! test (in a thread, or as a child process when a test needs its own PID),
//! and a line-oriented client that waits for bytes with a timeout instead of
//! sleeping.

#![allow(dead_code)] // Each test file uses a different subset.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use natter::{Config, Server};

/// How long a test waits for an expected line before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A config for tests: an ephemeral loopback port, otherwise the defaults.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    }
}

/// Starts a server with `config` on its own thread; returns its address.
/// The thread lives until the test process ends. (The server is built on
/// its thread because it is deliberately not `Send`: it is single-threaded
/// through and through.)
pub fn start(config: Config) -> SocketAddr {
    try_start(config).expect("bind")
}

/// Like [`start`], but returns the bind error instead of failing.
pub fn try_start(config: Config) -> std::io::Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || match Server::bind(config) {
        Ok(server) => {
            tx.send(Ok(server.local_addr())).unwrap();
            server.run().expect("event loop");
        }
        Err(e) => tx.send(Err(e)).unwrap(),
    });
    rx.recv().unwrap()
}

pub mod tls;

/// A test client speaking lines, over plain TCP or (with `S` a TLS stream,
/// see [`tls`]) over TLS.
pub struct Client<S = TcpStream> {
    pub reader: BufReader<S>,
    /// How the server names this client (`You are <who>`), once known.
    pub who: String,
}

impl Client {
    /// Connects without reading anything.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client::over(stream)
    }

    /// Connects and reads the `You are <who>` greeting.
    pub fn join(addr: SocketAddr) -> Client {
        Client::connect(addr).greeted()
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

/// What a test client talks over: a TCP stream, or a TLS one.
pub trait LineStream: Read + Write {
    /// Says "no more input from us" (netcat's end of input).
    fn finish_sending(&mut self);
}

impl LineStream for TcpStream {
    fn finish_sending(&mut self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

impl<S: LineStream> Client<S> {
    /// Half-closes: no more input from us.
    pub fn finish_sending(&mut self) {
        self.reader.get_mut().finish_sending();
    }

    /// A client over a connected stream whose read timeout is set.
    pub fn over(stream: S) -> Client<S> {
        Client {
            reader: BufReader::new(stream),
            who: String::new(),
        }
    }

    /// Reads the `You are <who>` greeting.
    pub fn greeted(mut self) -> Client<S> {
        let hello = self.line();
        self.who = hello
            .strip_prefix("You are ")
            .unwrap_or_else(|| panic!("expected a greeting, got {hello:?}"))
            .to_string();
        self
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes.as_ref()).expect("send");
        stream.flush().expect("send");
    }

    /// Sends one line (adds `\n`).
    pub fn say(&mut self, line: &str) {
        self.send(format!("{line}\n"));
    }

    /// Reads one line, without its `\n`. Fails the test on timeout or EOF.
    pub fn line(&mut self) -> String {
        let raw = self.raw_line();
        assert!(raw.ends_with(b"\n"), "connection closed mid-line: {raw:?}");
        String::from_utf8(raw[..raw.len() - 1].to_vec()).expect("server sent UTF-8")
    }

    /// Reads one line including its `\n`, as bytes; empty at EOF.
    pub fn raw_line(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(_) => buf,
            Err(e) => panic!("{}: waiting for a line: {e} (got {buf:?})", self.who),
        }
    }

    /// Takes `name` with `/nick` and reads its own rename line; the caller
    /// reads the others' copies of it.
    pub fn nick(&mut self, name: &str) {
        self.say(&format!("/nick {name}"));
        self.expect(&format!("{} is now known as {name}", self.who));
        self.who = name.to_string();
    }

    /// Reads one line and checks it.
    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{} got the wrong line", self.who);
    }

    /// Reads lines until one satisfies `f`; returns it. Other lines are skipped.
    pub fn until(&mut self, mut f: impl FnMut(&str) -> bool) -> String {
        loop {
            let line = self.line();
            if f(&line) {
                return line;
            }
        }
    }

    /// Asserts the server closes the connection (EOF) within `PATIENCE`
    /// without sending another line first.
    pub fn expect_closed(&mut self) {
        let raw = self.raw_line();
        assert!(
            raw.is_empty(),
            "expected EOF, got {:?}",
            String::from_utf8_lossy(&raw)
        );
    }

    /// Sends `/stats` and parses the answer into a map.
    pub fn stats(&mut self) -> HashMap<String, u64> {
        self.say("/stats");
        let line = self.until(|l| l.starts_with("*** stats: "));
        parse_stats(&line)
    }

    /// Reads everything until EOF.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        self.reader.read_to_end(&mut all).expect("read to end");
        all
    }
}

/// Plays the two-client netcat transcript of SEED.md with clients from
/// `connect`. Each `expect` checks one whole line in order, so a missing,
/// extra or reordered line fails; each client's stream is read to its end,
/// so nothing arrives after its last expected line.
pub fn play_seed_transcript<S: LineStream>(mut connect: impl FnMut() -> Client<S>) {
    let mut a = connect();
    let you_a = a.line();
    assert!(you_a.starts_with("You are 127.0.0.1:"), "{you_a}");
    let who_a = you_a.trim_start_matches("You are ").to_string();

    let mut b = connect();
    let who_b = b.line().trim_start_matches("You are ").to_string();
    a.expect(&format!("{who_b} has arrived"));

    a.say("Hi!");
    a.expect(&format!("{who_a}: Hi!"));
    b.expect(&format!("{who_a}: Hi!"));

    b.say("Hi yourself.");
    a.expect(&format!("{who_b}: Hi yourself."));
    b.expect(&format!("{who_b}: Hi yourself."));

    // ^C in window A.
    a.finish_sending();
    assert_eq!(a.read_to_end(), b"", "A got nothing after its last line");
    b.expect(&format!("{who_a} has left"));

    let mut c = connect();
    let who_c = c.line().trim_start_matches("You are ").to_string();
    b.expect(&format!("{who_c} has arrived"));

    b.say("Welcome.");
    c.expect(&format!("{who_b}: Welcome."));
    b.expect(&format!("{who_b}: Welcome."));

    // ^C in window B.
    b.finish_sending();
    assert_eq!(b.read_to_end(), b"");
    c.expect(&format!("{who_b} has left"));

    c.finish_sending();
    assert_eq!(c.read_to_end(), b"");
}

/// Parses `*** stats: a=1 b=2`.
pub fn parse_stats(line: &str) -> HashMap<String, u64> {
    line.trim_start_matches("*** stats: ")
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().expect("number")))
        .collect()
}

/// Reads from `stream` until `want` bytes arrived or the deadline passes.
pub fn read_exact_bytes(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut buf = vec![0; want];
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.read_exact(&mut buf).expect("read_exact");
    buf
}

/// The natter binary started as a child process, for tests that need its
/// PID (memory, descriptors, signals) or a process-wide setting.
pub struct Daemon {
    pub child: Child,
    /// The plain address, or the TLS one with `--listen none`.
    pub addr: SocketAddr,
    /// The TLS address, with `--tls-listen`.
    pub tls_addr: Option<SocketAddr>,
    /// The log up to and including the `listening on` line.
    pub early_log: String,
    pub stderr: BufReader<std::process::ChildStderr>,
}

impl Daemon {
    /// Starts `natter --listen 127.0.0.1:0 <args>` and waits for its
    /// `listening on` log line.
    pub fn start(args: &[&str]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_natter"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args);
        Daemon::spawn(cmd)
    }

    /// Starts a prepared command (stderr is captured, `RUST_LOG` is `info`
    /// unless the command sets it).
    pub fn spawn(mut cmd: Command) -> Daemon {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd.spawn().expect("spawn natter");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut early_log = String::new();
        let (addr, tls_addr) = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("natter exited before listening: {early_log}");
            }
            early_log.push_str(&line);
            let first_addr = |after: &str| -> Option<SocketAddr> {
                let rest = line.split(after).nth(1)?;
                Some(
                    rest.split_whitespace()
                        .next()?
                        .parse()
                        .expect("address in log line"),
                )
            };
            if let Some(addr) = first_addr("listening on ") {
                let tls =
                    first_addr("for TLS on ").or(line.contains("for TLS only").then_some(addr));
                break (addr, tls);
            }
        };
        Daemon {
            child,
            addr,
            tls_addr,
            stderr,
            early_log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// Open descriptors, from `/proc/PID/fd`.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// CPU time used so far (user + system), from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux.
    }

    /// Sends a signal by PID (with the shell's `kill`, present everywhere).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -{name} {}", self.pid())])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, at most `PATIENCE`.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "natter did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads log lines until one contains `needle`; returns it.
    pub fn log_until(&mut self, needle: &str) -> String {
        loop {
            let mut line = String::new();
            if self.stderr.read_line(&mut line).unwrap() == 0 {
                panic!("log ended before {needle:?}");
            }
            if line.contains(needle) {
                return line;
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/PID/status` in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Polls `f` until it returns true or `PATIENCE` passes. For conditions that
/// are not bytes on a socket (a process's descriptor count, say).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True if `e` is a read timeout.
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Starts a server with `config` on its own thread, as [`start`] does, and
/// returns what `learn` reads from it before it runs (its addresses).
pub fn start_and<T: Send + 'static>(
    config: Config,
    learn: impl FnOnce(&Server) -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server = Server::bind(config).expect("bind");
        tx.send(learn(&server)).unwrap();
        server.run().expect("event loop");
    });
    rx.recv().unwrap()
}

/// Like [`start`] for a config with `metrics` set: returns the chat address
/// and the metrics address (from [`Server::metrics_addr`]).
pub fn start_with_metrics(config: Config) -> (SocketAddr, SocketAddr) {
    start_and(config, |server| {
        let metrics = server.metrics_addr().expect("config.metrics is set");
        (server.local_addr(), metrics)
    })
}

/// Reads what the server sends on a raw socket until it closes (or resets)
/// the connection; fails the test if it stays open past `PATIENCE`.
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            // A signal meant for the test process (a child that ended).
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("the server kept the connection open: {e} (got {got:?})"),
        }
    }
}

pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(PATIENCE))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET http://addr/metrics`, parsed into `name{labels}` → value.
pub fn scrape(addr: SocketAddr) -> HashMap<String, u64> {
    let mut response = http_agent()
        .get(format!("http://{addr}/metrics"))
        .call()
        .expect("scrape");
    assert_eq!(response.status().as_u16(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = response.body_mut().read_to_string().unwrap();
    let mut values = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        let value = value
            .parse()
            .unwrap_or_else(|_| panic!("not a whole number: {line:?}"));
        assert!(
            values.insert(name.to_string(), value).is_none(),
            "{name} twice"
        );
    }
    values
}

/// A connection to `addr` from the source address `ip` (any address in
/// 127.0.0.0/8, or one a test's own network namespace holds).
pub fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let ip: std::net::IpAddr = ip.parse().expect("source address");
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket
        .bind(&SocketAddr::new(ip, 0).into())
        .unwrap_or_else(|e| panic!("bind the source {ip}: {e}"));
    socket
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect from {ip} to {addr}: {e}"));
    TcpStream::from(socket)
}
