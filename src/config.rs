//! Every setting and limit, its default, and the command line that sets it.
//!
//! Each limit is a named constant here, documented once, shown by `--help`,
//! and crossed by at least one test (see `docs/backpressure.md` for which).

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::limits::{GREETING_SLACK, MAX_WHO_BYTES};

/// Where natter listens unless told otherwise (the reference's `localhost:8000`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Most bytes queued for one client before the slow-client policy applies.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;
/// Most bytes queued for all clients together before reading pauses.
pub const DEFAULT_MAX_TOTAL_OUTPUT: usize = 64 * 1024 * 1024;
/// Longest input line kept, in bytes; longer lines are cut.
pub const DEFAULT_MAX_LINE: usize = 4096;
/// Shortest `--max-line` accepted: room for a name and a few words.
pub const MIN_MAX_LINE: usize = 16;
/// Lines per second one client may send (burst: twice this); 0 turns it off.
pub const DEFAULT_RATE: u32 = 20;
/// Bytes offered to one write call, unless `--max-write` says otherwise.
pub const DEFAULT_MAX_WRITE: usize = 256 * 1024;
/// How long shutdown keeps flushing queued output.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The room everyone starts in.
pub const DEFAULT_ROOM: &str = "#lobby";
/// The cluster's name: the prefix of every Redis key and channel it uses.
pub const DEFAULT_CLUSTER_NAME: &str = "natter";
/// How long a node may stay silent before the others take it for dead.
pub const DEFAULT_CLUSTER_TIMEOUT: Duration = Duration::from_secs(15);
/// Most bytes queued towards Redis before reading local clients pauses.
pub const DEFAULT_CLUSTER_MAX_QUEUE: usize = 16 * 1024 * 1024;
/// Most rooms at once, the default room included.
pub const DEFAULT_MAX_ROOMS: usize = 1000;
/// Largest `--motd` file read; a bigger one is refused (at start) or kept
/// out (on reload), and reading stops there, so `--motd /dev/zero` is safe.
pub const DEFAULT_MAX_MOTD: usize = 64 * 1024;
/// Most bytes of chat lines `--history` keeps; the oldest go first.
pub const DEFAULT_HISTORY_BYTES: usize = 256 * 1024;
/// IPv6 sources are grouped by this prefix for `--max-per-ip`, as one host
/// usually owns a whole /64; IPv4 sources are counted one address each.
pub const DEFAULT_PER_IP_PREFIX_V6: u8 = 64;
/// What to do with a client whose queue would pass `--max-output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowClient {
    /// Close it after the current turn and free its queue (as Redis and NATS do).
    Disconnect,
    /// Skip the lines that do not fit, count them, and say so later.
    Drop,
}

/// Everything the server can be told.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on (ignored when a listener is passed in).
    pub listen: String,
    /// Per-client output cap in bytes (`--max-output`).
    pub max_output: usize,
    /// Policy when a client passes `max_output` (`--slow-client`).
    pub slow_client: SlowClient,
    /// Cap on output bytes held for all clients (`--max-total-output`).
    pub max_total_output: usize,
    /// Longest line kept, in bytes (`--max-line`).
    pub max_line: usize,
    /// Lines per second per client, 0 for no limit (`--rate`).
    pub rate: u32,
    /// Most clients at once; `None` derives it from the descriptor limit.
    pub max_clients: Option<usize>,
    /// Most clients from one IP address, 0 for no limit (`--max-per-ip`).
    pub max_per_ip: usize,
    /// Close clients silent for this long (`--idle-timeout`).
    pub idle_timeout: Option<Duration>,
    /// `SO_SNDBUF` for accepted sockets (`--sndbuf`), for testing partial writes.
    pub sndbuf: Option<usize>,
    /// Most bytes offered to one write call (`--max-write`).
    pub max_write: usize,
    /// Ask each newcomer for a name first (`--ask-name`).
    pub ask_name: bool,
    /// Tell each newcomer who is here (`--who-on-join`).
    pub who_on_join: bool,
    /// Lines sent to each newcomer (`--motd`), re-read on SIGHUP.
    pub motd: Option<PathBuf>,
    /// Chat lines replayed to each newcomer (`--history`).
    pub history: usize,
    /// How long shutdown keeps flushing (`--shutdown-grace`).
    pub shutdown_grace: Duration,
    /// Where to serve Prometheus metrics (`--metrics`).
    pub metrics: Option<String>,
    /// Largest motd file accepted (`--max-motd`).
    pub max_motd: usize,
    /// Most bytes of history kept (`--history-bytes`); `None` takes
    /// [`DEFAULT_HISTORY_BYTES`], lowered if needed so that the motd and the
    /// history fit in a newcomer's share of `--max-output`.
    pub history_bytes: Option<usize>,
    /// Prefix length by which IPv6 sources are grouped for `--max-per-ip`.
    pub per_ip_prefix_v6: u8,
    /// Arrivals and departures announced per second; the rest are summed up
    /// once a second (`--notice-rate`, 0 = all announced).
    pub notice_rate: u32,
    /// The room everyone starts in (`--default-room`).
    pub default_room: String,
    /// Most rooms at once (`--max-rooms`).
    pub max_rooms: usize,
    /// `redis://[user:password@]HOST:PORT[/DB]` of the cluster (`--cluster`).
    pub cluster: Option<String>,
    /// The cluster's name (`--cluster-name`).
    pub cluster_name: String,
    /// This node's id (`--node-name`); `None` takes the host name and port.
    pub node_name: Option<String>,
    /// When a silent node is taken for dead (`--cluster-timeout`).
    pub cluster_timeout: Duration,
    /// Most bytes queued towards Redis (`--cluster-max-queue`).
    pub cluster_max_queue: usize,
    /// Share the listening port with other processes (`--reuseport`).
    pub reuseport: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: DEFAULT_LISTEN.to_string(),
            max_output: DEFAULT_MAX_OUTPUT,
            slow_client: SlowClient::Disconnect,
            max_total_output: DEFAULT_MAX_TOTAL_OUTPUT,
            max_line: DEFAULT_MAX_LINE,
            rate: DEFAULT_RATE,
            max_clients: None,
            max_per_ip: 0,
            idle_timeout: None,
            sndbuf: None,
            max_write: DEFAULT_MAX_WRITE,
            ask_name: false,
            who_on_join: false,
            motd: None,
            history: 0,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            metrics: None,
            max_motd: DEFAULT_MAX_MOTD,
            history_bytes: None,
            per_ip_prefix_v6: DEFAULT_PER_IP_PREFIX_V6,
            notice_rate: 0,
            default_room: DEFAULT_ROOM.to_string(),
            max_rooms: DEFAULT_MAX_ROOMS,
            cluster: None,
            cluster_name: DEFAULT_CLUSTER_NAME.to_string(),
            node_name: None,
            cluster_timeout: DEFAULT_CLUSTER_TIMEOUT,
            cluster_max_queue: DEFAULT_CLUSTER_MAX_QUEUE,
            reuseport: false,
        }
    }
}

impl Config {
    /// The most a newcomer may be sent at once besides its greeting line:
    /// the motd, the who line and the history. Half of `--max-output` is the
    /// limit, so a newcomer that reads is never cut by its own welcome.
    fn welcome_share(&self) -> usize {
        (self.max_output / 2).saturating_sub(GREETING_SLACK)
    }

    fn motd_room(&self) -> usize {
        if self.motd.is_some() {
            self.max_motd
        } else {
            0
        }
    }

    fn who_room(&self) -> usize {
        if self.who_on_join { MAX_WHO_BYTES } else { 0 }
    }

    /// The history's byte limit: `--history-bytes` if given, else the default
    /// lowered to what fits beside the motd in a newcomer's share.
    pub fn history_limit(&self) -> usize {
        match self.history_bytes {
            Some(n) => n,
            None => DEFAULT_HISTORY_BYTES.min(
                self.welcome_share()
                    .saturating_sub(self.motd_room() + self.who_room()),
            ),
        }
    }

    /// Refuses settings that contradict each other, with a message naming the
    /// flags and values.
    pub fn check(&self) -> Result<(), String> {
        let history = if self.history > 0 {
            self.history_limit()
        } else {
            0
        };
        let welcome = self.motd_room() + self.who_room() + history;
        if welcome > self.welcome_share() {
            let mut parts = Vec::new();
            if self.motd.is_some() {
                parts.push(format!("--max-motd {}", self.max_motd));
            }
            if self.who_on_join {
                parts.push(format!("the who line ({MAX_WHO_BYTES})"));
            }
            if self.history > 0 {
                parts.push(format!("--history-bytes {history}"));
            }
            return Err(format!(
                "{} must fit in half of --max-output {} (less {GREETING_SLACK} bytes), \
                 because every newcomer is sent them at once: lower them or raise --max-output",
                parts.join(" plus "),
                self.max_output
            ));
        }
        if self.history > 0 && history == 0 {
            return Err("--history-bytes must be more than 0 with --history".into());
        }
        if let Err(why) = crate::rooms::parse_room_name(self.default_room.as_bytes()) {
            return Err(format!("--default-room {}: {why}", self.default_room));
        }
        if let Some(node) = &self.node_name {
            crate::wire::check_node(node).map_err(|e| format!("--node-name: {e}"))?;
        }
        crate::wire::check_node(&self.cluster_name).map_err(|e| format!("--cluster-name: {e}"))?;
        if self.cluster_timeout < Duration::from_millis(300) {
            return Err("--cluster-timeout: at least 300ms".into());
        }
        if self.max_rooms == 0 {
            return Err("--max-rooms: must be more than 0".into());
        }
        if self.per_ip_prefix_v6 > 128 {
            return Err(format!(
                "--per-ip-prefix-v6: at most 128, got {}",
                self.per_ip_prefix_v6
            ));
        }
        Ok(())
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Config>),
    Help,
    Version,
}

/// The `--help` text.
pub const USAGE: &str = "\
natter: a chat server for netcat and telnet users, on one thread

Usage: natter [OPTIONS]

Connect with `nc 127.0.0.1 8000`; every line you type goes to everyone.
Type /help once connected for the commands.

Options:
  --listen ADDR              address to listen on [default: 127.0.0.1:8000]
                             (e.g. 127.0.0.1:0, [::1]:9000, 0.0.0.0:8000)
  --max-output BYTES         output queued for one client before the
                             slow-client policy applies [default: 1MiB]
  --slow-client POLICY       disconnect | drop [default: disconnect]
  --max-total-output BYTES   output queued for all clients before reading
                             pauses [default: 64MiB]
  --max-line BYTES           longest line kept; longer ones are cut
                             [default: 4096, min 16]
  --rate LINES_PER_SEC       lines per second per client, burst twice that;
                             0 turns it off [default: 20]
  --max-clients N            most clients at once
                             [default: descriptor limit minus 32]
  --max-per-ip N             most clients per source address; 0 = no limit;
                             set this on a public address [default: 0]
  --per-ip-prefix-v6 BITS    IPv6 sources in one prefix count as one address
                             for --max-per-ip [default: 64]
  --notice-rate N            arrivals and departures announced per second;
                             the rest are summed up once a second; 0 = all
                             [default: 0; set it on a public address]
  --idle-timeout DURATION    close clients silent this long (e.g. 5m)
                             [default: off]
  --ask-name                 ask each newcomer for a name first
  --who-on-join              tell each newcomer who is here
  --motd FILE                send FILE's lines to each newcomer
                             (re-read on SIGHUP)
  --default-room NAME        the room everyone starts in [default: #lobby]
  --max-rooms N              most rooms at once, the default included
                             [default: 1000]
  --history N                replay the last N chat lines to newcomers
                             [default: 0]
  --history-bytes BYTES      most bytes of history kept; the oldest lines go
                             first [default: 256KiB, less if the motd and
                             history would not fit in half of --max-output]
  --max-motd BYTES           largest --motd file accepted [default: 64KiB]
  --shutdown-grace DURATION  how long SIGTERM/SIGINT keep flushing
                             [default: 2s]
  --metrics ADDR             serve Prometheus metrics on http://ADDR/metrics
                             [default: off]
  --cluster URL              join a cluster of nodes through Redis:
                             redis://[user:password@]HOST:PORT[/DB]
                             (or NATTER_REDIS_PASSWORD) [default: off]
  --cluster-name NAME        the cluster's name, the prefix of its Redis
                             keys and channels [default: natter]
  --node-name NAME           this node's id [default: host name:port]
  --cluster-timeout DURATION a silent node's users leave after this
                             [default: 15s]
  --cluster-max-queue BYTES  output queued towards Redis before reading
                             pauses [default: 16MiB]
  --reuseport                share the port with other natter processes
                             (SO_REUSEPORT): one process per core
  --sndbuf BYTES             SO_SNDBUF of accepted sockets (for testing
                             partial writes) [default: kernel's]
  --max-write BYTES          most bytes per write call (for testing partial
                             writes) [default: 256KiB]
  -h, --help                 print this help
  -V, --version              print the version

BYTES take K, KiB, M, MiB, G or GiB (all powers of 1024); DURATION takes
ms, s, m or h (a bare number is seconds). RUST_LOG sets the log filter
[default: info]. Docs: README.md, docs/operations.md, docs/protocol.md.
";

/// Parses command-line arguments (without the program name).
pub fn parse_args<I>(args: I) -> Result<Invocation, String>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut config = Config::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let flag = match arg {
            Short('h') | Long("help") => return Ok(Invocation::Help),
            Short('V') | Long("version") => return Ok(Invocation::Version),
            Long(name) => format!("--{name}"),
            Short(c) => format!("-{c}"),
            Value(v) => return Err(format!("unexpected argument {v:?}")),
        };
        let mut value = || -> Result<String, String> {
            parser
                .value()
                .map_err(|e| e.to_string())?
                .into_string()
                .map_err(|v| format!("{flag}: not valid UTF-8: {v:?}"))
        };
        set_flag(&mut config, &flag, &mut value)?;
    }
    config.check()?;
    Ok(Invocation::Run(Box::new(config)))
}

/// Sets the field `flag` names, taking its value from `value` if it has one.
fn set_flag(
    config: &mut Config,
    flag: &str,
    value: &mut dyn FnMut() -> Result<String, String>,
) -> Result<(), String> {
    let c = config;
    let bytes = |v: String| parse_bytes(&v).map_err(|e| format!("{flag}: {e}"));
    let positive_bytes = |v: String| positive(flag, parse_bytes(&v));
    let duration = |v: String| parse_duration(&v).map_err(|e| format!("{flag}: {e}"));
    match flag {
        "--listen" => c.listen = value()?,
        "--max-output" => c.max_output = positive_bytes(value()?)?,
        "--slow-client" => c.slow_client = slow_client(&value()?)?,
        "--max-total-output" => c.max_total_output = positive_bytes(value()?)?,
        "--max-line" => c.max_line = max_line(bytes(value()?)?)?,
        "--rate" => c.rate = number(flag, &value()?)?,
        "--max-clients" => c.max_clients = Some(number(flag, &value()?)?),
        "--max-per-ip" => c.max_per_ip = number(flag, &value()?)?,
        "--per-ip-prefix-v6" => c.per_ip_prefix_v6 = number(flag, &value()?)?,
        "--idle-timeout" => c.idle_timeout = Some(duration(value()?)?).filter(|d| !d.is_zero()),
        "--sndbuf" => c.sndbuf = Some(positive_bytes(value()?)?),
        "--max-write" => c.max_write = positive_bytes(value()?)?,
        "--ask-name" => c.ask_name = true,
        "--who-on-join" => c.who_on_join = true,
        "--motd" => c.motd = Some(PathBuf::from(value()?)),
        "--max-motd" => c.max_motd = positive_bytes(value()?)?,
        "--history" => c.history = number(flag, &value()?)?,
        "--history-bytes" => c.history_bytes = Some(bytes(value()?)?),
        "--notice-rate" => c.notice_rate = number(flag, &value()?)?,
        "--default-room" => c.default_room = value()?,
        "--max-rooms" => c.max_rooms = number(flag, &value()?)?,
        "--cluster" => c.cluster = Some(value()?),
        "--cluster-name" => c.cluster_name = value()?,
        "--node-name" => c.node_name = Some(value()?),
        "--cluster-timeout" => c.cluster_timeout = duration(value()?)?,
        "--cluster-max-queue" => c.cluster_max_queue = positive_bytes(value()?)?,
        "--reuseport" => c.reuseport = true,
        "--shutdown-grace" => c.shutdown_grace = duration(value()?)?,
        "--metrics" => c.metrics = Some(value()?),
        _ => return Err(format!("unknown option {flag} (try --help)")),
    }
    Ok(())
}

fn slow_client(value: &str) -> Result<SlowClient, String> {
    match value {
        "disconnect" => Ok(SlowClient::Disconnect),
        "drop" => Ok(SlowClient::Drop),
        other => Err(format!(
            "--slow-client: expected disconnect or drop, got {other:?}"
        )),
    }
}

fn max_line(n: usize) -> Result<usize, String> {
    if n < MIN_MAX_LINE {
        return Err(format!("--max-line: at least {MIN_MAX_LINE} bytes"));
    }
    Ok(n)
}

fn number<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: expected a whole number, got {s:?}"))
}

fn positive(flag: &str, n: Result<usize, String>) -> Result<usize, String> {
    match n {
        Ok(0) => Err(format!("{flag}: must be more than 0")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{flag}: {e}")),
    }
}

/// Parses `4096`, `64K`, `64KiB`, `1M`, `1MiB`, `2G`, `2GiB`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("expected a size such as 4096 or 1MiB, got {s:?}"))?;
    let scale: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("unknown size unit {unit:?} in {s:?}")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses `500ms`, `2s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a duration such as 30s or 5m, got {s:?}"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("unknown duration unit {unit:?} in {s:?}")),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

/// Resolves an address given with `flag` (`localhost:8000` works as well as
/// IPs). Errors name the flag and the value.
pub fn resolve(flag: &str, value: &str) -> std::io::Result<SocketAddr> {
    let addrs = value.to_socket_addrs().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::InvalidInput {
            " (expected HOST:PORT, e.g. 127.0.0.1:8000 or [::1]:8000)"
        } else {
            ""
        };
        flag_error(flag, value, e, hint)
    })?;
    addrs.into_iter().next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{flag} {value}: no address"),
        )
    })
}

/// `e`, prefixed with the flag and value that caused it.
pub fn flag_error(flag: &str, value: &str, e: std::io::Error, hint: &str) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{flag} {value}: {e}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse_args(args.iter().copied())? {
            Invocation::Run(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = run(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8000");
        assert_eq!(c.max_output, 1 << 20);
        assert_eq!(c.max_total_output, 64 << 20);
        assert_eq!(c.max_line, 4096);
        assert_eq!(c.rate, 20);
        assert_eq!(c.slow_client, SlowClient::Disconnect);
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.history, 0);
        assert_eq!(c.shutdown_grace, Duration::from_secs(2));
    }

    #[test]
    fn flags_set_their_fields() {
        let c = run(&[
            "--listen",
            "[::1]:9000",
            "--max-output=64KiB",
            "--slow-client",
            "drop",
            "--rate",
            "0",
            "--idle-timeout",
            "5m",
            "--max-line",
            "100",
            "--ask-name",
            "--history",
            "10",
        ])
        .unwrap();
        assert_eq!(c.listen, "[::1]:9000");
        assert_eq!(c.max_output, 65536);
        assert_eq!(c.slow_client, SlowClient::Drop);
        assert_eq!(c.rate, 0);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.max_line, 100);
        assert!(c.ask_name);
        assert_eq!(c.history, 10);
    }

    #[test]
    fn bad_input_gets_a_clear_error() {
        assert!(
            run(&["--max-line", "8"])
                .unwrap_err()
                .contains("at least 16")
        );
        assert!(
            run(&["--max-output", "0"])
                .unwrap_err()
                .contains("more than 0")
        );
        assert!(
            run(&["--slow-client", "x"])
                .unwrap_err()
                .contains("disconnect or drop")
        );
        assert!(run(&["--rate", "-1"]).unwrap_err().contains("whole number"));
        assert!(
            run(&["--bogus"])
                .unwrap_err()
                .contains("unknown option --bogus")
        );
        assert!(run(&["stray"]).unwrap_err().contains("unexpected argument"));
        assert!(run(&["--idle-timeout", "5y"]).unwrap_err().contains("unit"));
        assert!(matches!(parse_args(["--help"]), Ok(Invocation::Help)));
        assert!(matches!(parse_args(["-V"]), Ok(Invocation::Version)));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert!(parse_bytes("1.5M").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }
}
