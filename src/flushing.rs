//! The write path: every member with something new gets one flush per
//! turn, straight from the arena; what a socket does not take stays queued
//! and is sealed into a shared chunk; then the caps are applied.

use log::{debug, warn};
use mio::{Registry, Token};

use crate::deadlines::{Deadlines, Timer};
use crate::limits::{PAUSE_STALL, WRITE_BUDGET};
use crate::log_gate::held_note;
use crate::out_queue::{Flushed, WriteLimits};
use crate::pressure::{Holder, Verdict};
use crate::sessions::Sessions;
use crate::stats::CloseReason;

impl Sessions {
    /// Gives every member with something new one flush, seals what is still
    /// unsent, caps the queues that keep a backlog, and readies the hub for
    /// the next turn.
    pub fn flush_all(&mut self, registry: &Registry, deadlines: &mut Deadlines) {
        let mut visit = std::mem::take(&mut self.visit);
        let mut backlog = std::mem::take(&mut self.backlog);
        backlog.clear();
        self.hub.take_visit(&mut visit);
        self.flushing = true;
        for &key in &visit {
            if self.conns.get(key).is_none_or(|c| c.doomed) {
                continue;
            }
            self.flush_one(key, registry);
            if !self.conns[key].doomed && !self.hub.member(key).output.is_empty() {
                backlog.push(key);
            }
        }
        self.hub.seal(&backlog);
        for &key in &backlog {
            self.apply_cap(key);
        }
        self.hub.end_turn();
        self.flushing = false;
        self.handshakes = 0;
        self.visit = visit;
        self.backlog = backlog;
        self.relieve_pressure(deadlines);
    }

    /// Writes what `key`'s socket takes now; a leaving client whose queue
    /// is empty is closed cleanly.
    fn flush_one(&mut self, key: usize, registry: &Registry) {
        let limits = WriteLimits {
            max_write: self.config.max_write,
            budget: WRITE_BUDGET,
        };
        let conn = &mut self.conns[key];
        let (queue, arena) = self.hub.outbox(key);
        let report = conn.flush(queue, arena, limits, registry, Token(key), self.now_ms);
        self.hub.stats.bytes_out += report.written as u64;
        self.hub.stats.short_writes += report.short_writes as u64;
        match report.how {
            Flushed::Drained if conn.leaving() => {
                conn.close_cleanly(&mut self.scratch);
                let reason = conn.close_reason.unwrap_or(CloseReason::Eof);
                self.doom(key, reason);
            }
            Flushed::Drained | Flushed::Blocked => {}
            // Flushed again next turn without waiting for an event.
            Flushed::OutOfBudget => self.hub.mark_dirty(key),
            Flushed::Failed(e) => {
                debug!("{}: write: {e}", self.hub.member(key).who);
                self.doom(key, CloseReason::Error);
            }
        }
    }

    /// Applies `--max-output` to what is left after the flush.
    fn apply_cap(&mut self, key: usize) {
        let cap = self.config.max_output;
        let (what, close) = match self.hub.apply_cap(key) {
            Verdict::Within | Verdict::Skipped { first: false, .. } => return,
            Verdict::Disconnect(cost) => (
                format!("{cost} bytes queued, over --max-output {cap}: disconnecting"),
                true,
            ),
            Verdict::Skipped { first: true, .. } => (
                format!("output over --max-output {cap}: skipping lines"),
                false,
            ),
        };
        if let Some(held) = self.gate_warn.pass(self.now_ms) {
            warn!("{}: {what}{}", self.hub.member(key).who, held_note(held));
        }
        if close {
            self.doom(key, CloseReason::Slow);
        }
    }

    /// While reading is paused: closes the stalled holders the policy picks,
    /// until the total is below half; resumes reading once it is.
    fn relieve_pressure(&mut self, deadlines: &mut Deadlines) {
        if !self.total.paused() {
            return;
        }
        let held = self.hub.queued_bytes();
        let holders: Vec<Holder> = self
            .conns
            .iter()
            .filter(|(key, c)| !c.doomed && !self.hub.member(*key).output.is_empty())
            .map(|(key, c)| Holder {
                key,
                cost: self.hub.member(key).output.cost(),
                last_write_ms: c.last_write_ms,
            })
            .collect();
        for holder in self.total.to_close(held, holders, self.now_ms) {
            if self.total.relieved(self.hub.queued_bytes()) {
                break;
            }
            let who = self.hub.member(holder.key).who.clone();
            self.total.log_close(&who, holder.cost, self.now_ms);
            self.doom(holder.key, CloseReason::Slow);
        }
        if self.total.resumes(self.hub.queued_bytes(), self.now_ms) {
            for (key, conn) in &self.conns {
                if conn.readable || !conn.input.is_empty() {
                    self.ready.push(key);
                }
            }
            // Newcomers waited in the backlog meanwhile.
            deadlines.at(self.now_ms, Timer::AcceptRetry);
        } else {
            // Look for stalled holders again shortly.
            let stall = PAUSE_STALL.as_millis() as u64;
            deadlines.at(self.now_ms + stall / 10, Timer::PauseCheck);
        }
    }
}
