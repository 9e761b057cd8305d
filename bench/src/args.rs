//! Command line.

use std::net::SocketAddr;

use crate::token::{MAX_LINE, MAX_SENDER, MIN_LINE};

mod help;
mod servers;

pub use help::HELP;
pub use servers::ServerPid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Throughput,
    Latency,
    Idle,
    SlowReader,
    Handshakes,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Latency => "latency",
            Scenario::Idle => "idle",
            Scenario::SlowReader => "slow-reader",
            Scenario::Handshakes => "handshakes",
        }
    }

    /// Scenarios without senders.
    pub fn silent(self) -> bool {
        matches!(self, Scenario::Idle | Scenario::Handshakes)
    }
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub scenario: Scenario,
    /// The server's addresses: one, or a cluster's nodes (client i
    /// connects to address i mod k).
    pub addrs: Vec<SocketAddr>,
    /// Every sender connects here instead (cross-node latency).
    pub sender_addr: Option<SocketAddr>,
    /// The processes whose CPU is read: the server, or each node and Redis.
    pub server_pids: Vec<ServerPid>,
    pub clients: usize,
    pub senders: usize,
    pub window: u64,
    pub rooms: usize,
    pub line_bytes: usize,
    pub duration: f64,
    pub warmup: f64,
    pub drain: f64,
    pub rate: f64,
    pub burst: usize,
    pub burst_at: Option<f64>,
    pub settle: f64,
    pub settle_max: f64,
    pub connect_timeout: f64,
    pub connect_parallel: usize,
    pub quickack: bool,
    pub name_first: bool,
    pub tls: bool,
    pub tls_ca: Option<std::path::PathBuf>,
    pub tls_insecure: bool,
    pub tls_name: String,
    pub slow_rcvbuf: usize,
    pub sample_ms: u64,
    pub label: Option<String>,
}

impl Opts {
    /// The process whose memory is watched (the only one, or the first).
    pub fn first_pid(&self) -> Option<u32> {
        self.server_pids.first().map(|p| p.pid)
    }

    /// Every server process's PID, in the order given.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.server_pids.iter().map(|p| p.pid)
    }

    /// The addresses for a log line: `A`, `A, B`, `A, B (senders on C)`.
    pub fn describe_addrs(&self) -> String {
        let list: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        match self.sender_addr {
            Some(s) => format!("{} (senders on {s})", list.join(", ")),
            None => list.join(", "),
        }
    }
}

pub enum Parsed {
    Run(Box<Opts>),
    Help,
}

fn secs(v: f64, what: &str, max: f64) -> Result<f64, String> {
    if v.is_finite() && (0.0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{what} must be between 0 and {max} seconds"))
    }
}

/// Every option at its default; scenario, address and client count are
/// filled in by `parse`.
fn defaults() -> Opts {
    Opts {
        scenario: Scenario::Throughput,
        addrs: Vec::new(),
        sender_addr: None,
        server_pids: Vec::new(),
        clients: 0,
        senders: 8,
        window: 64,
        rooms: 1,
        line_bytes: 64,
        duration: 5.0,
        warmup: 1.0,
        drain: 30.0,
        rate: 2000.0,
        burst: 0,
        burst_at: None,
        settle: 1.5,
        settle_max: 120.0,
        connect_timeout: 120.0,
        connect_parallel: 8,
        quickack: false,
        name_first: false,
        tls: false,
        tls_ca: None,
        tls_insecure: false,
        tls_name: "localhost".to_string(),
        slow_rcvbuf: 4096,
        sample_ms: 50,
        label: None,
    }
}

pub fn parse<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut o = defaults();
    let mut scenario = None;
    let mut clients = None;
    let mut parallel = None;
    let e = |e: lexopt::Error| e.to_string();
    while let Some(arg) = p.next().map_err(e)? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Long("addr") | Long("addrs") => {
                servers::push_addrs(&mut o.addrs, &value::<String>(&mut p)?)?
            }
            Long("clients") => clients = Some(value(&mut p)?),
            Long("connect-parallel") => parallel = Some(value(&mut p)?),
            Long(name) => {
                let name = name.to_string();
                set_option(&mut o, &name, &mut p)?;
            }
            Value(v) if scenario.is_none() => {
                scenario = Some(scenario_named(&v.string().map_err(e)?)?)
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    o.scenario = scenario.ok_or("missing scenario (see --help)")?;
    servers::check(&o)?;
    o.clients = clients.unwrap_or(match o.scenario {
        Scenario::Idle => 10_000,
        Scenario::Handshakes => 1000,
        _ => 100,
    });
    let handshakes = o.scenario == Scenario::Handshakes;
    o.connect_parallel = parallel.unwrap_or(if handshakes { 64 } else { 8 });
    validate(&mut o)?;
    Ok(Parsed::Run(Box::new(o)))
}

/// The value of the option just read, parsed.
fn value<T>(p: &mut lexopt::Parser) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    use lexopt::prelude::*;
    p.value().and_then(|v| v.parse()).map_err(|e| e.to_string())
}

/// The options that only set a field of `o`.
fn set_option(o: &mut Opts, name: &str, p: &mut lexopt::Parser) -> Result<(), String> {
    match name {
        "server-pid" => servers::push_pid(&mut o.server_pids, &value::<String>(p)?)?,
        "sender-addr" => o.sender_addr = Some(servers::parse_addr(&value::<String>(p)?)?),
        "senders" => o.senders = value(p)?,
        "window" => o.window = value(p)?,
        "rooms" => o.rooms = value(p)?,
        "line-bytes" => o.line_bytes = value(p)?,
        "duration" => o.duration = value(p)?,
        "warmup" => o.warmup = value(p)?,
        "drain" => o.drain = value(p)?,
        "rate" => o.rate = value(p)?,
        "burst" => o.burst = value(p)?,
        "burst-at" => o.burst_at = Some(value(p)?),
        "settle" => o.settle = value(p)?,
        "settle-max" => o.settle_max = value(p)?,
        "connect-timeout" => o.connect_timeout = value(p)?,
        "quickack" => o.quickack = true,
        "name-first" => o.name_first = true,
        "tls" => o.tls = true,
        "tls-ca" => o.tls_ca = Some(p.value().map_err(|e| e.to_string())?.into()),
        "tls-insecure" => o.tls_insecure = true,
        "tls-name" => o.tls_name = value(p)?,
        "slow-rcvbuf" => o.slow_rcvbuf = value(p)?,
        "sample-ms" => o.sample_ms = value(p)?,
        "label" => o.label = Some(value(p)?),
        _ => return Err(lexopt::Arg::Long(name).unexpected().to_string()),
    }
    Ok(())
}

fn scenario_named(v: &str) -> Result<Scenario, String> {
    Ok(match v {
        "throughput" => Scenario::Throughput,
        "latency" => Scenario::Latency,
        "idle" => Scenario::Idle,
        "slow-reader" | "slow_reader" | "slowreader" => Scenario::SlowReader,
        "handshakes" => Scenario::Handshakes,
        other => return Err(format!("unknown scenario {other:?} (see --help)")),
    })
}

/// Range checks; times in seconds are checked and kept as given.
fn validate(o: &mut Opts) -> Result<(), String> {
    let (clients, senders) = (o.clients, o.senders);
    if clients == 0 || clients > 1_000_000 {
        return Err("--clients must be between 1 and 1000000".into());
    }
    if !o.scenario.silent() {
        if senders == 0 || senders as u64 > MAX_SENDER {
            return Err(format!("--senders must be between 1 and {MAX_SENDER}"));
        }
        if clients < senders + 1 {
            return Err(format!(
                "--clients ({clients}) must exceed --senders ({senders}): one more client is the observer"
            ));
        }
    }
    check_rooms(o)?;
    check_tls(o)?;
    check_burst(o)?;
    if o.window == 0 {
        return Err("--window must be at least 1".into());
    }
    if !(MIN_LINE..=MAX_LINE).contains(&o.line_bytes) {
        return Err(format!(
            "--line-bytes must be between {MIN_LINE} and {MAX_LINE}"
        ));
    }
    o.duration = secs(o.duration, "--duration", 3600.0)?;
    if o.duration <= 0.0 && !o.scenario.silent() {
        return Err("--duration must be positive".into());
    }
    o.warmup = secs(o.warmup, "--warmup", 600.0)?;
    o.drain = secs(o.drain, "--drain", 600.0)?;
    o.settle = secs(o.settle, "--settle", 600.0)?;
    o.settle_max = secs(o.settle_max, "--settle-max", 3600.0)?;
    o.connect_timeout = secs(o.connect_timeout, "--connect-timeout", 3600.0)?;
    let rate = o.rate;
    if !(rate.is_finite() && rate > 0.0 && rate <= 100_000_000.0) {
        return Err("--rate must be a positive number of lines per second".into());
    }
    if o.connect_parallel == 0 {
        return Err("--connect-parallel must be at least 1".into());
    }
    if o.sample_ms == 0 {
        return Err("--sample-ms must be at least 1".into());
    }
    Ok(())
}

/// `--rooms`: every room needs a sender and an observer of its own.
fn check_rooms(o: &Opts) -> Result<(), String> {
    let (rooms, clients, senders) = (o.rooms, o.clients, o.senders);
    if rooms == 0 || rooms > 100_000 {
        return Err("--rooms must be between 1 and 100000".into());
    }
    if rooms > 1 && o.scenario == Scenario::Handshakes {
        return Err("handshakes does not join rooms (each client leaves once greeted)".into());
    }
    if rooms == 1 || o.scenario == Scenario::Idle {
        return Ok(());
    }
    if senders < rooms {
        return Err(format!(
            "--senders ({senders}) must be at least --rooms ({rooms}): every room needs a sender"
        ));
    }
    if clients < senders + rooms {
        return Err(format!(
            "--clients ({clients}) must be at least --senders + --rooms ({}): every room needs an observer that does not send",
            senders + rooms
        ));
    }
    Ok(())
}

fn check_tls(o: &Opts) -> Result<(), String> {
    let verifies = o.tls_ca.is_some() || o.tls_insecure;
    if !o.tls && verifies {
        return Err("--tls-ca and --tls-insecure go with --tls".into());
    }
    if o.tls && !verifies {
        return Err(
            "--tls needs --tls-ca FILE (the certificate to trust) or --tls-insecure".into(),
        );
    }
    if o.tls_ca.is_some() && o.tls_insecure {
        return Err("--tls-ca and --tls-insecure exclude each other".into());
    }
    if o.tls && o.scenario == Scenario::SlowReader {
        return Err("slow-reader does not support --tls".into());
    }
    Ok(())
}

/// `--burst`: only in the latency scenario, inside the measured interval.
fn check_burst(o: &mut Opts) -> Result<(), String> {
    if o.burst == 0 {
        return match o.burst_at {
            Some(_) => Err("--burst-at goes with --burst".into()),
            None => Ok(()),
        };
    }
    if o.scenario != Scenario::Latency {
        return Err("--burst is for the latency scenario".into());
    }
    if o.burst > 100_000 {
        return Err("--burst must be at most 100000".into());
    }
    let at = o.burst_at.unwrap_or(o.duration / 2.0);
    if !(at.is_finite() && at >= 0.0 && at < o.duration) {
        return Err("--burst-at must be within the measured interval (0 to --duration)".into());
    }
    o.burst_at = Some(at);
    Ok(())
}

/// The generator only ever talks to this machine.
pub fn check_loopback(addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() && addr.port() != 0 {
        Ok(())
    } else {
        Err(format!(
            "refusing {addr}: only loopback addresses (127.0.0.0/8, ::1) with a port are allowed"
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn run(args: &[&str]) -> Result<Opts, String> {
        match parse(args.iter().map(std::ffi::OsString::from))? {
            Parsed::Run(o) => Ok(*o),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn loopback_only() {
        assert!(run(&["throughput", "--addr", "127.0.0.1:9000"]).is_ok());
        assert!(run(&["throughput", "--addr", "127.3.2.1:9000"]).is_ok());
        assert!(run(&["throughput", "--addr", "[::1]:9000"]).is_ok());
        for bad in [
            "10.0.0.1:9000",
            "192.168.1.1:9000",
            "8.8.8.8:53",
            "[::ffff:127.0.0.1]:9000",
            "[2001:db8::1]:9000",
            "0.0.0.0:9000",
            "127.0.0.1:0",
        ] {
            assert!(run(&["throughput", "--addr", bad]).is_err(), "{bad}");
        }
        assert!(run(&["throughput", "--addr", "localhost:9000"]).is_err());
    }

    #[test]
    fn defaults_and_options() {
        let o = run(&["idle", "--addr", "127.0.0.1:1"]).unwrap();
        assert_eq!(o.clients, 10_000);
        let o = run(&[
            "latency",
            "--addr",
            "127.0.0.1:1",
            "--clients",
            "50",
            "--senders",
            "4",
            "--rate",
            "500",
            "--quickack",
            "--name-first",
            "--label",
            "x",
            "--duration",
            "0.5",
        ])
        .unwrap();
        assert_eq!(o.scenario, Scenario::Latency);
        assert_eq!((o.clients, o.senders), (50, 4));
        assert!(o.quickack && o.name_first);
        assert_eq!(o.rate, 500.0);
        assert_eq!(o.duration, 0.5);
        assert_eq!(o.label.as_deref(), Some("x"));
        assert!(run(&["throughput", "--addr", "127.0.0.1:1", "--clients", "8"]).is_err());
        assert!(run(&["throughput", "--addr", "127.0.0.1:1", "--line-bytes", "10"]).is_err());
        assert!(run(&["bogus", "--addr", "127.0.0.1:1"]).is_err());
        assert!(run(&["--addr", "127.0.0.1:1"]).is_err());
        assert!(matches!(
            parse(["--help"].iter().map(std::ffi::OsString::from)),
            Ok(Parsed::Help)
        ));
    }

    #[test]
    fn rooms_and_tls() {
        let rooms = |c: &str, s: &str, r: &str| {
            run(&[
                "throughput",
                "--addr",
                "127.0.0.1:1",
                "--clients",
                c,
                "--senders",
                s,
                "--rooms",
                r,
            ])
        };
        assert_eq!(rooms("1000", "200", "100").unwrap().rooms, 100);
        assert!(
            rooms("1000", "50", "100").is_err(),
            "fewer senders than rooms"
        );
        assert!(
            rooms("120", "100", "100").is_err(),
            "a room without observer"
        );
        assert!(rooms("200", "100", "100").is_ok());
        let tls = |extra: &[&str]| {
            let mut a = vec!["throughput", "--addr", "127.0.0.1:1"];
            a.extend_from_slice(extra);
            run(&a)
        };
        let o = tls(&["--tls", "--tls-ca", "/tmp/c.pem"]).unwrap();
        assert!(o.tls && o.tls_ca.is_some() && o.tls_name == "localhost");
        assert!(tls(&["--tls", "--tls-insecure"]).is_ok());
        assert!(tls(&["--tls"]).is_err(), "nothing to verify with");
        assert!(tls(&["--tls-insecure"]).is_err(), "without --tls");
        assert!(tls(&["--tls", "--tls-insecure", "--tls-ca", "x"]).is_err());
        let lat = |extra: &[&str]| {
            let mut a = vec!["latency", "--addr", "127.0.0.1:1", "--duration", "4"];
            a.extend_from_slice(extra);
            run(&a)
        };
        assert_eq!(lat(&["--burst", "200"]).unwrap().burst_at, Some(2.0));
        assert!(lat(&["--burst", "200", "--burst-at", "4"]).is_err());
        assert!(lat(&["--burst-at", "1"]).is_err());
        let h = run(&["handshakes", "--addr", "127.0.0.1:1"]).unwrap();
        assert_eq!((h.clients, h.connect_parallel), (1000, 64));
        let idle = run(&["idle", "--addr", "127.0.0.1:1", "--rooms", "1000"]).unwrap();
        assert_eq!((idle.clients, idle.rooms), (10_000, 1000));
    }
}
