//! Counters the server keeps, and the two ways they are shown: the `/stats`
//! line a client can ask for, and Prometheus text for `--metrics`.

use std::fmt::Write as _;

/// Why a connection ended. Each reason is a separate metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side (end of input).
    Eof,
    /// The client typed `/quit`.
    Quit,
    /// A read or write failed (reset, broken pipe, ...).
    Error,
    /// Its queue passed `--max-output` under `--slow-client disconnect`.
    Slow,
    /// It sent nothing for `--idle-timeout`.
    Idle,
    /// Over `--max-clients`.
    Full,
    /// Over `--max-per-ip`.
    PerIp,
    /// Accepted only to be closed while descriptors ran out.
    Busy,
    /// The server shut down.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in declaration order, so `reason as usize` indexes
    /// [`Stats::closed`] (checked by a unit test).
    pub const ALL: [CloseReason; 9] = [
        CloseReason::Eof,
        CloseReason::Quit,
        CloseReason::Error,
        CloseReason::Slow,
        CloseReason::Idle,
        CloseReason::Full,
        CloseReason::PerIp,
        CloseReason::Busy,
        CloseReason::Shutdown,
    ];

    /// The label used in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Eof => "eof",
            CloseReason::Quit => "quit",
            CloseReason::Error => "error",
            CloseReason::Slow => "slow",
            CloseReason::Idle => "idle",
            CloseReason::Full => "full",
            CloseReason::PerIp => "per_ip",
            CloseReason::Busy => "busy",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// Monotonic counters since start. Plain integers: one thread owns them.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Connections accepted (including ones closed at once as full or busy).
    pub accepted: u64,
    /// Connections closed, by reason (indexed like [`CloseReason::ALL`]).
    pub closed: [u64; 9],
    /// Lines read from clients (after framing, including commands).
    pub lines_in: u64,
    /// Lines queued for delivery: one per recipient per line.
    pub lines_out: u64,
    /// Bytes handed to client sockets.
    pub bytes_out: u64,
    /// Write calls that took fewer bytes than offered.
    pub short_writes: u64,
    /// Lines skipped for clients under `--slow-client drop`.
    pub skipped_lines: u64,
    /// Lines longer than `--max-line` that were cut.
    pub cut_lines: u64,
    /// Times a client's reading stopped because its rate was used up.
    pub rate_limited: u64,
    /// Times reading stopped for everyone because `--max-total-output` was hit.
    pub total_pauses: u64,
    /// Times accept failed for want of descriptors.
    pub fd_exhausted: u64,
    /// Times a sender was held back to the next turn because its line would
    /// have passed some recipient's per-turn budget.
    pub budget_holds: u64,
}

impl Stats {
    /// Counts a closed connection.
    pub fn close(&mut self, reason: CloseReason) {
        self.closed[reason as usize] += 1;
    }

    /// Connections closed for `reason` so far.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed[reason as usize]
    }
}

/// Values that are not counters: what the server holds right now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    pub clients: usize,
    /// Rooms now, the default included.
    pub rooms: usize,
    /// Members of the biggest room.
    pub biggest_room: usize,
    pub queued_bytes: usize,
    pub reading_paused: bool,
    pub rss_bytes: Option<u64>,
    /// In a cluster: other nodes' members known here, other nodes known,
    /// and whether the link to Redis is up.
    pub cluster: Option<ClusterGauges>,
}

/// What a cluster node knows of the others.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClusterGauges {
    pub remote_members: usize,
    pub peers: usize,
    pub up: bool,
}

/// One metric: its name (after `natter_`), type, help text, and where its
/// value comes from.
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Stats, &Gauges) -> u64,
);

/// Every metric but the per-reason close counts, in the order rendered.
const METRICS: &[Metric] = &[
    ("clients", "gauge", "Connected clients.", |_, g| {
        g.clients as u64
    }),
    (
        "rooms",
        "gauge",
        "Rooms now, the default room included.",
        |_, g| g.rooms as u64,
    ),
    (
        "biggest_room_members",
        "gauge",
        "Members of the biggest room.",
        |_, g| g.biggest_room as u64,
    ),
    (
        "accepted_connections_total",
        "counter",
        "Connections accepted.",
        |s, _| s.accepted,
    ),
    (
        "lines_in_total",
        "counter",
        "Lines read from clients.",
        |s, _| s.lines_in,
    ),
    (
        "lines_out_total",
        "counter",
        "Lines queued for delivery (one per recipient).",
        |s, _| s.lines_out,
    ),
    (
        "bytes_out_total",
        "counter",
        "Bytes written to client sockets.",
        |s, _| s.bytes_out,
    ),
    (
        "queued_output_bytes",
        "gauge",
        "Output bytes held for clients now.",
        |_, g| g.queued_bytes as u64,
    ),
    (
        "short_writes_total",
        "counter",
        "Write calls that took fewer bytes than offered.",
        |s, _| s.short_writes,
    ),
    (
        "slow_client_disconnects_total",
        "counter",
        "Clients closed because their queue passed --max-output.",
        |s, _| s.closed(CloseReason::Slow),
    ),
    (
        "skipped_lines_total",
        "counter",
        "Lines skipped for slow clients under --slow-client drop.",
        |s, _| s.skipped_lines,
    ),
    (
        "cut_lines_total",
        "counter",
        "Input lines cut at --max-line.",
        |s, _| s.cut_lines,
    ),
    (
        "rate_limited_reads_total",
        "counter",
        "Times reading a client paused because its --rate was used up.",
        |s, _| s.rate_limited,
    ),
    (
        "read_pauses_total",
        "counter",
        "Times reading paused for everyone at --max-total-output.",
        |s, _| s.total_pauses,
    ),
    (
        "reading_paused",
        "gauge",
        "1 while reading is paused for everyone.",
        |_, g| g.reading_paused as u64,
    ),
    (
        "turn_budget_holds_total",
        "counter",
        "Times a sender waited a turn because a recipient's per-turn share was used up.",
        |s, _| s.budget_holds,
    ),
    (
        "fd_exhaustion_total",
        "counter",
        "Accepts that failed for want of descriptors.",
        |s, _| s.fd_exhausted,
    ),
];

/// What `/stats` shows besides the server's counters, read when a client
/// asks: its own queue and the hub's sizes.
pub struct StatsView {
    /// Bytes queued for the asking client.
    pub queued: usize,
    /// Lines skipped for it under `--slow-client drop`, in all.
    pub skipped: u32,
    pub clients: usize,
    /// Every byte queued for anyone, shared chunks and the arenas.
    pub total_queued: usize,
    pub rooms: usize,
    pub biggest_room: usize,
}

/// The `/stats` line, newline included. Its keys are documented in
/// `docs/protocol.md` and must not change: scripts parse them.
pub fn render_stats_line(s: &Stats, v: &StatsView) -> String {
    format!(
        "*** stats: queued={} skipped={} clients={} total_queued={} short_writes={} \
         slow_disconnects={} skipped_total={} lines_in={} lines_out={} bytes_out={} \
         cut_lines={} rate_limited={} read_pauses={} fd_exhausted={} budget_holds={} \
         rooms={} biggest_room={}\n",
        v.queued,
        v.skipped,
        v.clients,
        v.total_queued,
        s.short_writes,
        s.closed(CloseReason::Slow),
        s.skipped_lines,
        s.lines_in,
        s.lines_out,
        s.bytes_out,
        s.cut_lines,
        s.rate_limited,
        s.total_pauses,
        s.fd_exhausted,
        s.budget_holds,
        v.rooms,
        v.biggest_room,
    )
}

/// Renders Prometheus text exposition format (version 0.0.4).
pub fn render_prometheus(stats: &Stats, gauges: &Gauges) -> String {
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP natter_{name} {help}");
        let _ = writeln!(out, "# TYPE natter_{name} {kind}");
        let _ = writeln!(out, "natter_{name} {value}");
    };
    for (name, kind, help, value) in METRICS {
        metric(name, kind, help, value(stats, gauges));
    }
    if let Some(cluster) = gauges.cluster {
        metric(
            "cluster_remote_members",
            "gauge",
            "Other nodes' members known here.",
            cluster.remote_members as u64,
        );
        metric(
            "cluster_peers",
            "gauge",
            "Other nodes known here.",
            cluster.peers as u64,
        );
        metric(
            "cluster_link_up",
            "gauge",
            "1 while the link to Redis is up.",
            cluster.up as u64,
        );
    }
    if let Some(rss) = gauges.rss_bytes {
        metric(
            "resident_memory_bytes",
            "gauge",
            "Resident set size of the process.",
            rss,
        );
    }
    let _ = writeln!(
        out,
        "# HELP natter_closed_connections_total Connections closed, by reason."
    );
    let _ = writeln!(out, "# TYPE natter_closed_connections_total counter");
    for (reason, n) in CloseReason::ALL.iter().zip(stats.closed) {
        let _ = writeln!(
            out,
            "natter_closed_connections_total{{reason=\"{}\"}} {n}",
            reason.label()
        );
    }
    out
}

/// Reads this process's resident set size from `/proc/self/status`.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_metric_once_with_help_and_type() {
        let mut stats = Stats {
            lines_in: 7,
            ..Stats::default()
        };
        stats.close(CloseReason::Slow);
        stats.close(CloseReason::Eof);
        stats.close(CloseReason::Eof);
        let text = render_prometheus(
            &stats,
            &Gauges {
                clients: 3,
                rooms: 2,
                biggest_room: 2,
                queued_bytes: 10,
                reading_paused: false,
                rss_bytes: Some(4096),
                cluster: None,
            },
        );
        assert!(text.contains("\nnatter_rooms 2\n"));
        assert!(text.contains("\nnatter_biggest_room_members 2\n"));
        assert!(text.contains("\nnatter_lines_in_total 7\n"));
        assert!(text.contains("\nnatter_clients 3\n"));
        assert!(text.contains("\nnatter_slow_client_disconnects_total 1\n"));
        assert!(text.contains("natter_closed_connections_total{reason=\"eof\"} 2\n"));
        assert!(text.contains("\nnatter_resident_memory_bytes 4096\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }

    #[test]
    fn the_stats_line_has_every_key_in_its_documented_order() {
        let mut stats = Stats {
            lines_in: 10,
            budget_holds: 4,
            ..Stats::default()
        };
        stats.close(CloseReason::Slow);
        let view = StatsView {
            queued: 1,
            skipped: 2,
            clients: 3,
            total_queued: 5,
            rooms: 6,
            biggest_room: 7,
        };
        assert_eq!(
            render_stats_line(&stats, &view),
            "*** stats: queued=1 skipped=2 clients=3 total_queued=5 short_writes=0 \
             slow_disconnects=1 skipped_total=0 lines_in=10 lines_out=0 bytes_out=0 \
             cut_lines=0 rate_limited=0 read_pauses=0 fd_exhausted=0 budget_holds=4 \
             rooms=6 biggest_room=7\n"
        );
    }

    #[test]
    fn close_reasons_index_their_counters() {
        for (i, reason) in CloseReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i);
        }
    }

    #[test]
    fn rss_is_readable_here() {
        assert!(rss_bytes().unwrap() > 0);
    }
}
