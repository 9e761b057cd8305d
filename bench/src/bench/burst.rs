//! The latency scenario's burst (`--burst N`): N more clients connect all
//! at once, `--burst-at` seconds into the measured interval, and are
//! stepped like the connect phase while the senders keep their schedule.
//! Each hangs up once connected, as in the handshakes scenario: the burst
//! is a storm of handshakes, and the clients of the scenario stay the same
//! before and after it (what the burst's clients read is not counted).
//! The burst lasts until the last of them is connected (or given up); the
//! lines whose intended send time falls in that window are the burst's
//! (`latency_burst_us`), the others the calm's (`latency_calm_us`).

use std::io;
use std::ops::Range;

use super::{Bench, Phase};
use crate::json::Obj;
use crate::log;
use crate::procstat::{SEC, now_ns, secs_ns};
use crate::report::{connect_times, percentiles};

pub struct Burst {
    /// Its clients' indices.
    clients: Range<usize>,
    /// Seconds into the measured interval.
    at: f64,
    /// The measured interval's start.
    t0: Option<u64>,
    started: Option<u64>,
    ended: Option<u64>,
}

impl Burst {
    pub fn new(clients: Range<usize>, at: f64) -> Self {
        Burst {
            clients,
            at,
            t0: None,
            started: None,
            ended: None,
        }
    }

    fn due(&self) -> Option<u64> {
        self.t0.map(|t0| t0 + secs_ns(self.at))
    }
}

impl Bench {
    /// The measured interval starts at `t0`: the burst is due from it.
    pub(super) fn burst_schedule(&mut self, t0: u64) {
        if let Some(b) = self.burst.as_mut() {
            b.t0 = Some(t0);
        }
    }

    /// The next time the burst has something to do by the clock.
    pub(super) fn burst_deadline(&self) -> u64 {
        match &self.burst {
            Some(b) if b.started.is_none() => b.due().unwrap_or(u64::MAX),
            Some(b) if b.ended.is_none() => self.conns.next_deadline(),
            _ => u64::MAX,
        }
    }

    /// Start the burst when it is due, step its connects, end it when they
    /// are all done.
    pub(super) fn burst_step(&mut self, now: u64) {
        let Some(b) = self.burst.as_mut() else {
            return;
        };
        if !matches!(self.phase, Phase::Measure | Phase::Drain) || b.ended.is_some() {
            return;
        }
        let start = match b.started {
            Some(t) => t,
            None if b.due().is_some_and(|due| now >= due) => {
                log(format_args!(
                    "burst: {} connections at once",
                    b.clients.len()
                ));
                self.conns.begin_burst(b.clients.clone());
                b.started = Some(now);
                if let Some(split) = self.tally.burst.as_deref_mut() {
                    split.window = (now, u64::MAX);
                }
                now
            }
            None => return,
        };
        let limit = start + secs_ns(self.o.connect_timeout);
        if !self.conns.step(now, start, limit) {
            return;
        }
        let clients = &self.conns.clients()[b.clients.clone()];
        let last = clients.iter().filter_map(|c| c.connected.map(|(at, _)| at));
        let end = last.max().unwrap_or(now).max(start);
        b.ended = Some(end);
        if let Some(split) = self.tally.burst.as_deref_mut() {
            split.window = (start, end);
        }
        log(format_args!(
            "burst: done in {:.3} s",
            (end - start) as f64 / SEC
        ));
    }

    /// After the drain: a burst still under way is waited for (at most
    /// `--connect-timeout` from its start), so that its duration is known.
    pub(super) fn finish_burst(&mut self) -> io::Result<()> {
        while self
            .burst
            .as_ref()
            .is_some_and(|b| b.started.is_some() && b.ended.is_none())
        {
            self.turn(now_ns() + 10_000_000)?;
        }
        Ok(())
    }

    /// The burst's fields in the latency report.
    pub(super) fn burst_fields(&self, o: &mut Obj) {
        let (Some(b), Some(split)) = (&self.burst, self.tally.burst.as_deref()) else {
            return;
        };
        let clients = &self.conns.clients()[b.clients.clone()];
        let connected = clients.iter().filter(|c| c.connected.is_some()).count();
        let since = |t: Option<u64>, from: Option<u64>| {
            t.zip(from).map(|(t, f)| t.saturating_sub(f) as f64 / SEC)
        };
        o.u64("burst_clients", b.clients.len() as u64)
            .opt_f64("burst_started_at_s", since(b.started, b.t0), 3)
            .u64("burst_connected", connected as u64)
            .bool("burst_complete", connected == b.clients.len())
            .opt_f64("burst_duration_s", since(b.ended, b.started), 4)
            .obj("burst_connect_us", connect_times(clients.iter()))
            .obj("latency_burst_us", percentiles(&split.during))
            .obj("latency_calm_us", percentiles(&split.outside))
            .str(
                "latency_burst_measured_at",
                "latency_us split by intended send time: lines sent from the start of the burst until its last connection was made (or given up), and all other measured lines",
            );
    }
}
