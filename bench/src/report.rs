//! The result of a run as one JSON object (field by field as documented in
//! `natter-bench --help` and bench/README.md).

use hdrhistogram::Histogram;

mod servers;

pub use servers::Per;

use crate::args::{Opts, Scenario};
use crate::client::Client;
use crate::connect::Connections;
use crate::json::Obj;
use crate::procstat::{Mem, MemWatch, SEC, Used, secs_ns};
use crate::receive::Reader;
use crate::senders::Senders;
use crate::slow::SlowEnd;
use crate::tally::Tally;

/// Generator CPU over wall time at or above this means generator-bound.
const GENERATOR_BOUND: f64 = 0.90;
/// …or when it spent less than this share of the interval waiting in poll:
/// it always had work waiting (its own CPU time may leave out the loopback
/// network processing done on its core, and other processes may take the
/// core from it; either way the number then measures the generator).
const GENERATOR_IDLE_MIN: f64 = 0.05;
/// No delivery for this long at the end of the measured interval: stalled.
const STALL_GAP: u64 = 500_000_000;

/// Readings taken around the measured interval and after it.
pub struct Measured {
    /// CPU time and cores over the measured interval.
    pub used: Used,
    pub final_gap: u64,
    pub receivers_at_start: usize,
    pub drain_s: f64,
    pub drain_complete: bool,
    pub slow: SlowEnd,
}

/// Everything a report reads, borrowed from the run.
pub struct Report<'a> {
    pub o: &'a Opts,
    pub conns: &'a Connections,
    pub senders: &'a Senders,
    pub tally: &'a Tally,
    pub reader: &'a Reader,
    pub mem: &'a MemWatch,
    /// Time the generator spent waiting in poll during the interval.
    pub poll_wait: u64,
    /// When the server closed the slow client during the run.
    pub slow_closed: Option<u64>,
}

impl Report<'_> {
    pub fn common(&self, o: &mut Obj) {
        o.str("scenario", self.o.scenario.name())
            .opt_str("label", self.o.label.as_deref())
            .str("addr", &self.o.addrs[0].to_string());
        self.addr_fields(o);
        o.opt_u64("server_pid", self.o.first_pid().map(u64::from))
            .u64("clients", self.o.clients as u64)
            .u64("rooms", self.o.rooms as u64)
            .bool("tls", self.o.tls);
    }

    pub fn connection_fields(&self, o: &mut Obj) {
        let st = &self.conns.st;
        o.u64("connected_ever", st.connected_ever)
            .u64("connected_at_end", self.conns.alive_healthy() as u64)
            .u64("connect_retries", st.retries)
            .u64("connect_pokes", st.pokes)
            .u64("connect_stale", st.stale)
            .u64("connect_failed", self.conns.failed())
            .opt_f64("connect_timed_out_after_s", st.timed_out, 1)
            .u64("closed_by_server", st.closed_by_server)
            .opt_str("last_connect_error", st.last_error.as_deref())
            .opt_str("tls_negotiated", st.tls.as_deref());
    }

    pub fn connection_status(&self) -> Option<String> {
        self.conns.status(self.o.clients)
    }

    /// The idle scenario: `after` is the server's memory once settled.
    pub fn idle(&self, rss_before: Option<u64>, after: Option<Mem>, settled: bool) -> String {
        let alive = self.conns.alive_healthy() as u64;
        let mut o = Obj::new();
        self.common(&mut o);
        self.connection_fields(&mut o);
        let per = match (rss_before, after) {
            (Some(b), Some(a)) if alive > 0 => Some((a.rss as f64 - b as f64) / alive as f64),
            _ => None,
        };
        o.bool("settled", settled)
            .f64("settle_quiet_s", self.o.settle, 2)
            .u64("notice_lines", self.tally.st.noise)
            .u64("malformed_lines", self.tally.st.malformed)
            .u64("overlong_lines", self.reader.overlong)
            .u64("bytes_received", self.reader.bytes_in)
            .opt_u64("server_rss_before_bytes", rss_before)
            .opt_u64("server_rss_connected_bytes", after.map(|m| m.rss))
            .opt_f64("server_rss_per_client_bytes", per, 1)
            .opt_u64("server_peak_rss_bytes", self.mem.peak())
            .str(
                "status",
                &self.connection_status().unwrap_or_else(|| "ok".to_string()),
            );
        o.finish()
    }

    /// The traffic scenarios (throughput, latency, slow-reader); `more`
    /// adds the fields of a burst of connections.
    pub fn traffic(&self, m: &Measured, more: impl FnOnce(&mut Obj)) -> String {
        let dur = (m.used.t1 - m.used.t0) as f64 / SEC;
        let mut o = Obj::new();
        self.common(&mut o);
        self.setup_fields(&mut o, dur);
        self.connection_fields(&mut o);
        self.line_fields(&mut o, m, dur);
        self.latency_fields(&mut o);
        more(&mut o);
        self.resource_fields(&mut o, m);
        if self.o.scenario == Scenario::SlowReader {
            self.slow_fields(&mut o, m);
        }
        o.str("status", &self.traffic_status(m));
        o.finish()
    }

    fn setup_fields(&self, o: &mut Obj, dur: f64) {
        o.u64("senders", self.senders.count() as u64);
        match self.o.scenario {
            Scenario::Latency => {
                o.f64("rate_lines_per_sec", self.o.rate, 1);
            }
            _ => {
                o.u64("window", self.o.window);
            }
        }
        o.u64("line_bytes", self.o.line_bytes as u64)
            .f64("warmup_s", self.o.warmup, 2)
            .f64("duration_s", dur, 3)
            .bool("quickack", self.o.quickack)
            .bool("name_first", self.o.name_first)
            .bool("echo", self.tally.echo());
    }

    fn line_fields(&self, o: &mut Obj, m: &Measured, dur: f64) {
        let total_measured = self.senders.measured_total();
        let (expected, unique) = self
            .tally
            .deliveries(self.senders, self.conns.clients(), false);
        let lost = expected.saturating_sub(unique);
        let st = &self.tally.st;
        let loss = if expected > 0 {
            lost as f64 / expected as f64
        } else {
            0.0
        };
        o.u64("receivers", m.receivers_at_start as u64)
            .u64("lines_sent", self.senders.lines_sent())
            .u64("lines_sent_measured", total_measured)
            .f64("sent_lines_per_sec", total_measured as f64 / dur, 1)
            .u64("delivered_lines", st.delivered)
            .f64("delivered_lines_per_sec", st.delivered as f64 / dur, 1)
            .u64("expected_deliveries", expected)
            .u64("unique_deliveries", unique)
            .u64("lost", lost)
            .f64("loss_ratio", loss, 6)
            .u64("duplicates", st.duplicates)
            .u64("order_violations", st.order_violations)
            .u64("malformed_lines", st.malformed)
            .u64("cross_room_lines", st.cross_room)
            .u64("notice_lines", st.noise)
            .u64("overlong_lines", self.reader.overlong)
            .u64("window_resets", self.senders.window_resets)
            .u64("backlog_dropped", self.senders.backlog_dropped)
            .f64("drain_s", m.drain_s, 3)
            .bool("drain_complete", m.drain_complete)
            .f64(
                "longest_delivery_gap_s",
                self.tally.longest_gap as f64 / SEC,
                3,
            )
            .f64("final_delivery_gap_s", m.final_gap as f64 / SEC, 3);
    }

    fn latency_fields(&self, o: &mut Obj) {
        o.obj("latency_us", percentiles(&self.tally.hist)).str(
            "latency_measured_at",
            match self.o.scenario {
                Scenario::Latency => {
                    "every receiving client (senders included), from each line's intended send time to its arrival at the client's socket (kernel receive timestamp, SO_TIMESTAMPNS)"
                }
                _ => "every receiving client (senders included), from each line's actual send time to the generator's read",
            },
        );
        self.site_latency_fields(o);
        if self.reader.kernel_ts {
            o.obj("latency_read_us", percentiles(&self.tally.hist_user))
                .str(
                    "latency_read_measured_at",
                    "the same lines, up to when the generator read them (adds the generator's own reading delay)",
                )
                .u64("reads_without_kernel_timestamp", self.reader.kernel_ts_missing)
                .obj("send_lag_us", percentiles(&self.senders.send_lag))
                .str(
                    "send_lag_measured_at",
                    "how late the generator queued each measured line after its intended send time (part of the latency above; large values mean the generator, not the server, was slow)",
                );
        }
    }

    fn resource_fields(&self, o: &mut Obj, m: &Measured) {
        let srv_cpu_s = m.used.srv_cpu.map(|c| c as f64 / SEC);
        let delivered = self.tally.st.delivered;
        o.opt_f64(
            "server_cpu_ns_per_line",
            srv_cpu_s.and_then(|c| (delivered > 0).then(|| c * SEC / delivered as f64)),
            1,
        )
        .opt_u64("server_peak_rss_bytes", self.mem.peak())
        .opt_u64("server_rss_end_bytes", self.mem.last.map(|m| m.rss))
        .u64("rss_samples", self.mem.samples);
        self.cpu_fields(o, &m.used);
        self.pid_fields(o, &m.used, Per::Line(delivered));
    }

    /// CPU over an interval: the server's (its process, and its core when
    /// pinned) and the generator's, and whether the generator was the limit.
    pub fn cpu_fields(&self, o: &mut Obj, u: &Used) {
        let interval = (u.t1 - u.t0) as f64;
        let gen_util = u.gen_cpu as f64 / interval;
        let gen_idle = self.poll_wait as f64 / interval;
        let srv_cpu_s = u.srv_cpu.map(|c| c as f64 / SEC);
        o.opt_f64("server_cpu_s", srv_cpu_s, 4)
            .opt_f64("server_cpu_util", srv_cpu_s.map(|c| c * SEC / interval), 3)
            .opt_u64("server_core", u.srv_core.map(|c| c as u64))
            .opt_f64("server_core_busy", u.srv_core_busy, 3)
            .f64("generator_cpu_s", u.gen_cpu as f64 / SEC, 4)
            .f64("generator_cpu_util", gen_util, 3)
            .opt_u64("generator_core", u.gen_core.map(|c| c as u64))
            .opt_f64("generator_core_busy", u.gen_core_busy, 3)
            .f64("generator_idle_fraction", gen_idle, 3)
            .bool(
                "generator_bound",
                gen_util >= GENERATOR_BOUND || gen_idle < GENERATOR_IDLE_MIN,
            );
    }

    fn slow_fields(&self, o: &mut Obj, m: &Measured) {
        o.bool("slow_client_disconnected", m.slow.disconnected)
            .str("slow_client_state", m.slow.state)
            .u64("slow_client_bytes_read_at_end", m.slow.bytes_read)
            .opt_f64(
                "slow_client_closed_at_s",
                self.slow_closed
                    .map(|t| (t as f64 - m.used.t0 as f64) / SEC),
                3,
            )
            .u64("slow_client_rcvbuf", self.o.slow_rcvbuf as u64);
    }

    fn traffic_status(&self, m: &Measured) -> String {
        // Healthy servers deliver many lines a second in every scenario here;
        // half a second without one at the end of the interval is a stall.
        let stall_gap = (secs_ns(self.o.duration) / 2).min(STALL_GAP);
        if let Some(s) = self.connection_status() {
            s
        } else if self.tally.st.delivered == 0 {
            "stalled: 0 lines/s".to_string()
        } else if m.final_gap >= stall_gap {
            format!(
                "stalled: no line delivered in the last {:.1} s of the interval",
                m.final_gap as f64 / SEC
            )
        } else {
            "ok".to_string()
        }
    }
}

/// How long connecting took, for the clients that connected among `clients`
/// (from the opening of the socket to connected, in µs).
pub fn connect_times<'a>(clients: impl Iterator<Item = &'a Client>) -> Obj {
    let mut h = crate::tally::histogram().expect("histogram bounds");
    for (_, took) in clients.filter_map(|c| c.connected) {
        h.saturating_record(took.max(1_000));
    }
    percentiles(&h)
}

pub fn percentiles(h: &Histogram<u64>) -> Obj {
    let mut lat = Obj::new();
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1e3;
    lat.u64("count", h.len());
    if h.is_empty() {
        for k in ["p50", "p90", "p99", "p999", "max", "mean"] {
            lat.null(k);
        }
    } else {
        lat.f64("p50", q(0.5), 1)
            .f64("p90", q(0.9), 1)
            .f64("p99", q(0.99), 1)
            .f64("p999", q(0.999), 1)
            .f64("max", h.max() as f64 / 1e3, 1)
            .f64("mean", h.mean() / 1e3, 1);
    }
    lat
}
