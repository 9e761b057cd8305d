//! The fields of a run against several addresses (a cluster's nodes) or
//! several server processes (each node, and Redis). With one address and
//! one process none of them appear, so such a run's JSON is what it always
//! was.

use super::{Report, percentiles};
use crate::json::Obj;
use crate::procstat::{PidUsed, SEC, Used, proc_mem};

/// What a server process's CPU is divided by.
#[derive(Clone, Copy)]
pub enum Per {
    /// Lines delivered in the measured interval (traffic scenarios).
    Line(u64),
    /// Connections made (handshakes).
    Handshake(u64),
}

impl Report<'_> {
    /// The addresses, when there are several or the senders have their own.
    pub(super) fn addr_fields(&self, o: &mut Obj) {
        let opts = self.o;
        if opts.addrs.len() < 2 && opts.sender_addr.is_none() {
            return;
        }
        let addrs: Vec<String> = opts.addrs.iter().map(|a| a.to_string()).collect();
        o.strs("addrs", addrs.iter().map(String::as_str)).opt_str(
            "sender_addr",
            opts.sender_addr.map(|a| a.to_string()).as_deref(),
        );
    }

    /// The latency of the deliveries that stayed on their sender's address
    /// and of those that crossed to another (in a cluster: through Redis).
    pub(super) fn site_latency_fields(&self, o: &mut Obj) {
        if let Some(x) = self.tally.sites.as_deref() {
            o.obj("latency_same_addr_us", percentiles(&x.same))
                .obj("latency_cross_addr_us", percentiles(&x.cross));
        }
    }

    /// Each server process's share of `u`, when there are several: what it
    /// used per line (or handshake), its busy fraction of one core, its
    /// core's, and its peak memory.
    pub fn pid_fields(&self, o: &mut Obj, u: &Used, per: Per) {
        if u.pids.len() < 2 {
            return;
        }
        let interval = (u.t1 - u.t0) as f64;
        let list = u.pids.iter().zip(&self.o.server_pids).map(|(p, given)| {
            let mut e = Obj::new();
            e.u64("pid", u64::from(p.pid))
                .opt_str("label", given.label.as_deref());
            pid_cpu(&mut e, p, interval, per);
            e.opt_u64("core", p.core.map(|c| c as u64))
                .opt_f64("core_busy", p.core_busy, 3)
                .opt_u64("peak_rss_bytes", proc_mem(p.pid).map(|m| m.hwm.max(m.rss)));
            e
        });
        o.objs("server_pids", list);
    }
}

/// One process's CPU over an interval of `interval` ns.
fn pid_cpu(e: &mut Obj, p: &PidUsed, interval: f64, per: Per) {
    let cpu = p.cpu.map(|c| c as f64);
    e.opt_f64("cpu_s", cpu.map(|c| c / SEC), 4)
        .opt_f64("cpu_util", cpu.map(|c| c / interval), 3);
    match per {
        Per::Line(n) => e.opt_f64(
            "cpu_ns_per_line",
            cpu.filter(|_| n > 0).map(|c| c / n as f64),
            1,
        ),
        Per::Handshake(n) => e.opt_f64(
            "cpu_us_per_handshake",
            cpu.filter(|_| n > 0).map(|c| c / 1e3 / n as f64),
            1,
        ),
    };
}
