//! The command line: `--help`'s text, and the flags parsed into a
//! [`Config`] (each flag's value checked as it is read; how the values fit
//! together is [`Config::check`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

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
                             (e.g. 127.0.0.1:0, [::1]:9000, 0.0.0.0:8000;
                             none: TLS clients only)
  --tls-listen ADDR          also listen for TLS clients on ADDR, in the same
                             rooms [default: off]
  --tls-cert FILE            the certificate chain for --tls-listen, PEM
                             (re-read on SIGHUP)
  --tls-key FILE             its private key, PEM: PKCS#8, SEC1 or PKCS#1
                             (re-read on SIGHUP)
  --tls-handshake-timeout DURATION
                             close a TLS client whose handshake takes
                             longer [default: 10s]
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
        "--tls-listen" => c.tls_listen = Some(value()?),
        "--tls-cert" => c.tls_cert = Some(PathBuf::from(value()?)),
        "--tls-key" => c.tls_key = Some(PathBuf::from(value()?)),
        "--tls-handshake-timeout" => c.tls_handshake_timeout = duration(value()?)?,
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
    fn tls_flags_and_how_they_fit_together() {
        let c = run(&[
            "--tls-listen",
            "127.0.0.1:6697",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-handshake-timeout",
            "3s",
        ])
        .unwrap();
        assert_eq!(c.tls_listen.as_deref(), Some("127.0.0.1:6697"));
        assert_eq!(c.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(c.tls_key, Some(PathBuf::from("k.pem")));
        assert_eq!(c.tls_handshake_timeout, Duration::from_secs(3));
        assert!(c.check().is_ok());
        assert_eq!(
            Config::default().tls_handshake_timeout,
            Duration::from_secs(10)
        );
        let refused = |args: &[&str], want: &str| {
            let err = run(args).and_then(|c| c.check()).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        };
        refused(
            &["--tls-listen", "127.0.0.1:0"],
            "needs --tls-cert FILE and --tls-key FILE",
        );
        refused(&["--tls-cert", "c", "--tls-key", "k"], "need --tls-listen");
        refused(
            &["--listen", "none"],
            "--listen none leaves nothing to listen on",
        );
        let zero = ["--tls-listen", "x:1", "--tls-cert", "c", "--tls-key", "k"];
        refused(
            &[&zero[..], &["--tls-handshake-timeout", "0"]].concat(),
            "more than 0",
        );
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
