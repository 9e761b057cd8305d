//! The sending clients: how many lines each has sent and had acknowledged,
//! and when the next one goes out — by window (throughput) or by the clock
//! (latency).

use std::io;

use hdrhistogram::Histogram;

use crate::client::State;
use crate::connect::Connections;
use crate::procstat::SEC;
use crate::tally::histogram;
use crate::token;

/// Pending output per sender beyond which the latency scenario stops queueing
/// (the server is not reading; the lines are counted as not sent).
const MAX_BACKLOG: usize = 4 << 20;
/// A full window with no acknowledgement for this long is reopened (the
/// missing lines were lost or mangled and nothing later acknowledged them).
const ACK_TIMEOUT: u64 = 1_000_000_000;

pub struct Sender {
    pub client: usize,
    /// Next sequence number (= lines queued so far).
    sent: u64,
    /// Lines acknowledged by the observer (cumulative: seeing `q` acknowledges
    /// everything before it, which per-sender ordering makes sound).
    acked: u64,
    last_progress: u64,
    /// First and one-past-last measured sequence numbers.
    pub mstart: u64,
    mend: u64,
    /// Latency scenario: intended time of the next line.
    next_due: u64,
    template: Vec<u8>,
}

pub struct Senders {
    list: Vec<Sender>,
    /// The run's time zero (lines carry send times relative to it).
    base: u64,
    window: u64,
    /// Latency scenario: time between two lines of one sender.
    interval_ns: u64,
    pub window_resets: u64,
    pub backlog_dropped: u64,
    /// Latency scenario: how late (ns) each measured line was queued after
    /// its intended time — the generator's own lateness.
    pub send_lag: Histogram<u64>,
}

impl Senders {
    /// Clients `0..count` send `line_bytes` lines, at most `window`
    /// unacknowledged, or `rate` lines/s between them.
    pub fn new(
        count: usize,
        line_bytes: usize,
        (window, rate): (u64, f64),
        base: u64,
    ) -> io::Result<Self> {
        let list = (0..count)
            .map(|i| Sender {
                client: i,
                sent: 0,
                acked: 0,
                last_progress: base,
                mstart: u64::MAX,
                mend: u64::MAX,
                next_due: 0,
                template: token::template(i as u64, line_bytes),
            })
            .collect();
        Ok(Senders {
            list,
            base,
            window,
            interval_ns: ((count.max(1) as f64) * SEC / rate).max(1.0) as u64,
            window_resets: 0,
            backlog_dropped: 0,
            send_lag: histogram()?,
        })
    }

    pub fn count(&self) -> usize {
        self.list.len()
    }

    /// Line `seq` of sender `s` arrived; at the observer it acknowledges.
    /// `None` if this run never sent such a line.
    #[inline]
    pub fn arrived(&mut self, s: usize, seq: u64, at_observer: bool, now: u64) -> Option<&Sender> {
        let snd = self.list.get_mut(s).filter(|snd| seq < snd.sent)?;
        if at_observer && seq >= snd.acked {
            snd.acked = seq + 1;
            snd.last_progress = now;
        }
        Some(snd)
    }

    /// Sending starts at `now`: fresh windows, and the clock-driven senders
    /// staggered evenly over one period.
    pub fn start(&mut self, now: u64) {
        let n = self.list.len() as u64;
        for (i, s) in self.list.iter_mut().enumerate() {
            s.last_progress = now;
            s.next_due = now + i as u64 * self.interval_ns / n;
        }
    }

    /// The earliest time a clock-driven line is due.
    pub fn next_due(&self) -> u64 {
        self.list
            .iter()
            .map(|s| s.next_due)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The measured interval begins: lines from here on are measured.
    pub fn mark_start(&mut self) {
        for s in &mut self.list {
            s.mstart = s.sent;
        }
    }

    /// The measured interval ends: no line after this is measured.
    pub fn mark_end(&mut self) {
        for s in &mut self.list {
            s.mend = s.sent;
        }
    }

    /// Measured lines sender `s` sent.
    pub fn measured(&self, s: usize) -> u64 {
        let snd = &self.list[s];
        snd.mend
            .min(snd.sent)
            .saturating_sub(snd.mstart.min(snd.sent))
    }

    pub fn measured_total(&self) -> u64 {
        (0..self.list.len()).map(|s| self.measured(s)).sum()
    }

    pub fn lines_sent(&self) -> u64 {
        self.list.iter().map(|s| s.sent).sum()
    }

    /// Throughput: top every sender's window up.
    pub fn fill_windows(&mut self, conns: &mut Connections, now: u64) {
        let w = self.window;
        for snd in &mut self.list {
            let ci = snd.client;
            if conns.client(ci).state != State::Connected {
                continue;
            }
            if snd.sent - snd.acked >= w {
                if now - snd.last_progress.min(now) < ACK_TIMEOUT {
                    continue;
                }
                snd.acked = snd.sent;
                snd.last_progress = now;
                self.window_resets += 1;
            }
            let n = w - (snd.sent - snd.acked);
            let c = conns.client_mut(ci);
            let t = now - self.base;
            for _ in 0..n {
                c.queue_line(&snd.template, snd.sent, t);
                snd.sent += 1;
            }
            conns.flush(ci);
        }
    }

    /// Latency: queue every line whose intended time has come. `measuring`:
    /// record how late each one is.
    pub fn schedule(&mut self, conns: &mut Connections, now: u64, measuring: bool) {
        for snd in &mut self.list {
            if snd.next_due > now {
                continue;
            }
            let ci = snd.client;
            let c = conns.client_mut(ci);
            if c.state != State::Connected {
                continue;
            }
            while snd.next_due <= now {
                if c.pending_out() > MAX_BACKLOG {
                    self.backlog_dropped += 1;
                } else {
                    if measuring {
                        self.send_lag.saturating_record(now - snd.next_due);
                    }
                    c.queue_line(&snd.template, snd.sent, snd.next_due - self.base);
                    snd.sent += 1;
                }
                snd.next_due += self.interval_ns;
            }
            conns.flush(ci);
        }
    }
}
