//! The read path: a client's bytes become lines, and its lines become
//! output, within the turn's bounds.
//!
//! A client is read at most once per turn and at most [`READ_BUDGET`] bytes;
//! reading stops early for its rate (`--rate`), for the turn's budget (what
//! its next line would queue for someone does not fit), and while the total
//! output cap pauses everyone. Each stop puts it back on `ready` (or a
//! wake-up timer) when it ends; nothing is dropped, TCP holds the sender.

use log::{debug, warn};

use crate::chat::{self, Outcome};
use crate::connection::Read;
use crate::deadlines::{Deadlines, Timer};
use crate::limits::{MAX_HANDSHAKES_PER_TURN, READ_BUDGET};
use crate::line_buffer::{Frame, LineBuffer};
use crate::log_gate::held_note;
use crate::member::Phase;
use crate::sessions::Sessions;
use crate::stats::CloseReason;

impl Sessions {
    /// Serves the clients that had more to read than one turn allows, or were
    /// waiting for a token, the turn budget, or the end of a pause.
    pub fn serve_ready(&mut self, carried: Vec<usize>, deadlines: &mut Deadlines) {
        for &key in &carried {
            if self.conns.contains(key) {
                self.serve_read(key, deadlines);
            }
        }
        // Keep the allocation if nothing new was queued meanwhile.
        if self.ready.is_empty() {
            self.ready = carried;
            self.ready.clear();
        }
    }

    /// Handles what is buffered, then reads until `WouldBlock`, the per-turn
    /// read budget, or a stop (rate limit, turn budget, total-output pause).
    pub fn serve_read(&mut self, key: usize, deadlines: &mut Deadlines) {
        let conn = &mut self.conns[key];
        if conn.doomed || conn.leaving() || conn.throttled || conn.awaiting || self.total.paused() {
            // Whatever paused it puts it back on the ready list when it ends.
            return;
        }
        if conn.read_turn == self.hub.turn() {
            // Already had its share this turn (an event came before the entry
            // carried over): that read put it back on `ready` if it had more.
            return;
        }
        if conn.transport.handshake_deadline().is_some() {
            // Handshakes cost CPU: a burst of them gets a few each turn, and
            // chat goes on between.
            if self.handshakes >= MAX_HANDSHAKES_PER_TURN {
                self.ready.push(key);
                return;
            }
            self.handshakes += 1;
        }
        let conn = &mut self.conns[key];
        conn.read_turn = self.hub.turn();
        let mut input = std::mem::take(&mut conn.input);
        let mut stopped = self.handle_lines(key, &mut input, deadlines);
        let mut budget = READ_BUDGET;
        let mut failure = None;
        while !stopped && self.conns[key].readable {
            if budget == 0 {
                self.ready.push(key);
                break;
            }
            match self.conns[key].read_some(&mut self.scratch) {
                Read::Bytes(n) => {
                    input.push(&self.scratch[..n]);
                    budget = budget.saturating_sub(n);
                    stopped = self.handle_lines(key, &mut input, deadlines);
                }
                Read::Empty => {}
                Read::Eof if !input.is_empty() => {
                    // The last line may lack its newline; it still counts.
                    input.push(b"\n");
                    stopped = self.handle_lines(key, &mut input, deadlines);
                }
                Read::Eof => {}
                Read::Failed(e) => failure = Some(e),
            }
        }
        input.release_if_empty();
        self.conns[key].input = input;
        self.after_tls_read(key);
        let conn = &self.conns[key];
        if let Some(e) = failure {
            self.read_failed(key, e);
        } else if conn.eof && !stopped && !conn.leaving() && !conn.doomed {
            // Every line it sent is handled: now it leaves.
            self.hub.depart(key, None, true, self.now_ms);
            self.begin_leaving(key, CloseReason::Eof, deadlines);
        }
    }

    /// A TLS client's handshake may have finished (it is welcomed now), and
    /// its transport may have bytes of its own to send.
    fn after_tls_read(&mut self, key: usize) {
        let Some(tls) = self.conns[key].transport.tls() else {
            return;
        };
        let established = tls.take_established();
        let pending = tls.has_pending();
        if established {
            let how = tls.describe();
            debug!("{}: TLS established ({how})", self.hub.member(key).who);
            self.welcome(key);
        }
        if pending {
            self.hub.mark_dirty(key);
        }
    }

    /// A read failed: the connection is closed. A TLS failure (garbage or
    /// plain text on the TLS port, a bad handshake) is worth a warning with
    /// its reason; the client got an alert.
    fn read_failed(&mut self, key: usize, e: std::io::Error) {
        let who = &self.hub.member(key).who;
        if e.kind() == std::io::ErrorKind::InvalidData {
            if let Some(held) = self.gate_warn.pass(self.now_ms) {
                warn!("{who}: TLS failed: {e}{}", held_note(held));
            }
        } else {
            debug!("{who}: read: {e}");
        }
        self.doom(key, CloseReason::Error);
    }

    /// Handles complete lines from `input` until none is left or something
    /// says stop. Returns true if it stopped early (input may remain).
    ///
    /// A line is looked at before it is taken: if what it would queue does
    /// not fit in this turn's budget, it stays in the buffer and the client
    /// is read again next turn; TCP holds the rest back meanwhile.
    fn handle_lines(
        &mut self,
        key: usize,
        input: &mut LineBuffer,
        deadlines: &mut Deadlines,
    ) -> bool {
        let max = self.config.max_line;
        loop {
            let conn = &self.conns[key];
            if conn.doomed || conn.leaving() || !self.reading_allowed(deadlines) {
                return true;
            }
            let Some(frame) = input.peek(max) else {
                return false;
            };
            let conn = &mut self.conns[key];
            let rate = self.config.rate;
            if rate > 0 && !conn.bucket.ready(rate, self.now_ms) {
                let wake = self.now_ms + conn.bucket.wait_ms(rate);
                conn.throttled = true;
                deadlines.at(wake, Timer::Wake { key, id: conn.id });
                self.hub.stats.rate_limited += 1;
                return true;
            }
            let outcome = self.handle_frame(key, frame);
            if outcome == Outcome::Held {
                self.hub.stats.budget_holds += 1;
                self.ready.push(key);
                return true;
            }
            if rate > 0 {
                self.conns[key].bucket.take();
            }
            input.next(max);
            match outcome {
                Outcome::Quit => {
                    self.begin_leaving(key, CloseReason::Quit, deadlines);
                    return true;
                }
                Outcome::Waiting => {
                    self.conns[key].awaiting = true;
                    return true;
                }
                Outcome::Done | Outcome::Held => {}
            }
        }
    }

    /// False once the total output cap pauses reading for everyone (or
    /// the queue towards Redis is full).
    fn reading_allowed(&mut self, deadlines: &mut Deadlines) -> bool {
        if self.total.paused() || self.cluster_full {
            return false;
        }
        if self.total.allows(self.hub.queued_bytes(), self.now_ms) {
            return true;
        }
        self.hub.stats.total_pauses += 1;
        deadlines.at(self.now_ms, Timer::PauseCheck);
        false
    }

    /// Handles one frame, unless what it would queue does not fit this turn.
    fn handle_frame(&mut self, key: usize, frame: Frame<'_>) -> Outcome {
        let (line, cut) = match frame {
            Frame::Line(line) => (line, false),
            Frame::Cut(kept) => (kept, true),
        };
        let outcome = chat::handle_line(&mut self.hub, key, line, self.now_ms);
        if outcome == Outcome::Held {
            return outcome;
        }
        self.hub.stats.lines_in += 1;
        self.conns[key].last_heard_ms = self.now_ms;
        if cut {
            self.hub.stats.cut_lines += 1;
            if self.hub.member(key).phase != Phase::Gone {
                // (A cut `/quit REASON` has already left.)
                let notice = format!("*** line too long: cut to {} bytes\n", line.len());
                self.hub.send(key, notice.as_bytes());
            }
            if let Some(held) = self.gate_warn.pass(self.now_ms) {
                let who = &self.hub.member(key).who;
                let max = self.config.max_line;
                warn!("{who}: line over {max} bytes cut{}", held_note(held));
            }
        }
        outcome
    }
}
