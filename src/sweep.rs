//! The timers that walk every client: idle timeouts, and leaving clients
//! whose linger ran out; and the one that does not, a TLS handshake's
//! deadline.

use std::time::Duration;

use log::{debug, warn};

use crate::deadlines::{Deadlines, Timer};
use crate::limits::MIN_SWEEP_GAP_MS;
use crate::log_gate::held_note;
use crate::sessions::Sessions;
use crate::stats::CloseReason;

/// Shortest gap between idle sweeps for an idle timeout: a hundredth of it,
/// at least [`MIN_SWEEP_GAP_MS`], so a sweep (which visits every client)
/// runs at most a hundred times per timeout and closes at most 1% late.
pub fn gap(idle: Duration) -> u64 {
    MIN_SWEEP_GAP_MS.max(idle.as_millis() as u64 / 100)
}

impl Sessions {
    /// Walks all clients for the idle timeout and for leaving clients whose
    /// linger ran out, then schedules the next walk at the earliest deadline.
    pub fn sweep(&mut self, deadlines: &mut Deadlines) {
        let now = self.now_ms;
        let idle_ms = self.config.idle_timeout.map(|d| d.as_millis() as u64);
        let paused = self.total.paused();
        let mut idle = Vec::new();
        let mut expired = Vec::new();
        for (key, conn) in &self.conns {
            match (conn.leave_by_ms, idle_ms) {
                _ if conn.doomed => {}
                (Some(by), _) if by <= now => expired.push(key),
                // While reading is paused for everyone, nobody's lines are
                // read, so silence proves nothing.
                (None, Some(ms)) if conn.last_heard_ms + ms <= now && !paused => idle.push(key),
                _ => {}
            }
        }
        for key in idle {
            self.hub.send(key, b"*** idle timeout\n");
            self.hub.depart(key, None, true, now);
            self.begin_leaving(key, CloseReason::Idle, deadlines);
        }
        for key in expired {
            let member = self.hub.member(key);
            let unsent = member.output.len();
            debug!(
                "{}: closing with {unsent} bytes unsent after linger",
                member.who
            );
            self.doom(key, CloseReason::Error);
        }
        self.schedule_sweep(deadlines);
    }

    /// A TLS client's handshake deadline came: closed if it is the same
    /// client and still shaking hands.
    pub fn handshake_due(&mut self, key: usize, id: u32) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.id != id || conn.doomed || conn.transport.handshake_deadline().is_none() {
            return;
        }
        if let Some(held) = self.gate_warn.pass(self.now_ms) {
            let who = &self.hub.member(key).who;
            warn!(
                "{who}: TLS handshake not done in time: closing{}",
                held_note(held)
            );
        }
        self.doom(key, CloseReason::Error);
    }

    /// Schedules the next sweep at the earliest idle or linger deadline.
    /// Idle sweeps are spaced by [`gap`]; a linger deadline is not pushed
    /// back by it.
    fn schedule_sweep(&mut self, deadlines: &mut Deadlines) {
        let idle = self.config.idle_timeout;
        let spacing = idle.map_or(MIN_SWEEP_GAP_MS, gap);
        let now = self.now_ms;
        let next = self
            .conns
            .iter()
            .filter(|(_, c)| !c.doomed)
            .filter_map(|(_, c)| match (c.leave_by_ms, idle) {
                (Some(by), _) => Some(by),
                (None, Some(idle)) => {
                    Some((c.last_heard_ms + idle.as_millis() as u64).max(now + spacing))
                }
                (None, None) => None,
            })
            .min();
        if let Some(at) = next {
            deadlines.at(at.max(now + MIN_SWEEP_GAP_MS), Timer::Sweep);
        }
    }
}
