//! Every setting and limit, its default, and the checks on them; the command
//! line that sets them is in `config/args.rs`.
//!
//! Each limit is a named constant here, documented once, shown by `--help`,
//! and crossed by at least one test (see `docs/backpressure.md` for which).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::limits::{GREETING_SLACK, MAX_WHO_BYTES};

mod args;
pub use args::{Invocation, USAGE, parse_args, parse_bytes, parse_duration};

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
/// How long a TLS client may take to finish its handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// Where TLS clients connect (`--tls-listen`).
    pub tls_listen: Option<String>,
    /// The certificate chain, PEM (`--tls-cert`).
    pub tls_cert: Option<PathBuf>,
    /// The private key, PEM: PKCS#8, SEC1 or PKCS#1 (`--tls-key`).
    pub tls_key: Option<PathBuf>,
    /// How long a TLS handshake may take (`--tls-handshake-timeout`).
    pub tls_handshake_timeout: Duration,
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
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
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

    /// True if `--listen none`: TLS clients only.
    pub fn plain_listener(&self) -> bool {
        self.listen != "none"
    }

    fn check_tls(&self) -> Result<(), String> {
        let given = self.tls_cert.is_some() || self.tls_key.is_some();
        match (&self.tls_listen, &self.tls_cert, &self.tls_key) {
            (Some(_), Some(_), Some(_)) => {}
            (Some(_), _, _) => {
                return Err("--tls-listen needs --tls-cert FILE and --tls-key FILE".into());
            }
            (None, _, _) if given => {
                return Err("--tls-cert and --tls-key need --tls-listen ADDR".into());
            }
            (None, _, _) => {}
        }
        if !self.plain_listener() && self.tls_listen.is_none() {
            return Err("--listen none leaves nothing to listen on: add --tls-listen ADDR".into());
        }
        if self.tls_handshake_timeout.is_zero() {
            return Err("--tls-handshake-timeout: must be more than 0".into());
        }
        Ok(())
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
        self.check_tls()?;
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
