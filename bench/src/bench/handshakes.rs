//! The handshakes scenario: N connections (full TLS handshakes with
//! `--tls`) as fast as `--connect-parallel` in flight allow, each closed by
//! the generator once it is connected (handshake done, greeting read), so
//! the server never holds more than the connections in flight. The server's
//! CPU is read over the whole connect phase.

use std::io;

use super::Bench;
use crate::json::Obj;
use crate::procstat::{SEC, Usage, Used};
use crate::report::{Per, connect_times};

impl Bench {
    pub(super) fn handshakes(mut self) -> io::Result<String> {
        self.mem.sample();
        let usage = Usage::start(self.o.pids());
        self.connect_all()?;
        let used = usage.end();
        self.mem.sample();
        Ok(self.handshake_report(&used))
    }

    fn handshake_report(&self, used: &Used) -> String {
        let r = self.report();
        let clients = self.conns.clients();
        let done = clients.iter().filter_map(|c| c.connected);
        let (count, last) = done.fold((0u64, used.t0), |(n, last), (at, _)| (n + 1, last.max(at)));
        // From the first connect to the last connection made.
        let span = (last - used.t0) as f64 / SEC;
        let rate = (count > 0 && span > 0.0).then(|| count as f64 / span);
        let per = used
            .srv_cpu
            .filter(|_| count > 0)
            .map(|c| c as f64 / 1e3 / count as f64);
        let mut o = Obj::new();
        r.common(&mut o);
        o.u64("connect_parallel", self.o.connect_parallel as u64);
        r.connection_fields(&mut o);
        o.u64("handshakes", count)
            .f64("handshakes_s", span, 3)
            .opt_f64("handshakes_per_sec", rate, 1)
            .obj("connect_us", connect_times(clients.iter()))
            .str(
                "connect_measured_at",
                "from the opening of each connection's socket to its greeting (TCP connect, TLS handshake, first line)",
            )
            .u64("notice_lines", self.tally.st.noise)
            .u64("bytes_received", self.reader.bytes_in)
            .opt_f64("server_cpu_us_per_handshake", per, 1)
            .opt_u64("server_peak_rss_bytes", self.mem.peak());
        r.cpu_fields(&mut o, used);
        r.pid_fields(&mut o, used, Per::Handshake(count));
        let status = match r.connection_status() {
            Some(s) => s,
            None if count == 0 => "no connection made".to_string(),
            None => "ok".to_string(),
        };
        o.str("status", &status);
        o.finish()
    }
}
