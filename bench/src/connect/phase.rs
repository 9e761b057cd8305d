//! The connect phase: at most `--connect-parallel` attempts in flight,
//! retries after a backoff, attempts that hang (no greeting: poked, then
//! left to wait without a slot; no answer to `/join`: failed), and the
//! account of what did not connect.

use std::io::{self, ErrorKind};
use std::mem;

use super::{
    CONNECT_ATTEMPT_TIMEOUT, Connections, GREETING_POKE, GREETING_PROBE, GREETING_TIMEOUT,
    JOIN_TIMEOUT, STALE_MAX,
};
use crate::client::State;
use crate::log;
use crate::procstat::SEC;

impl Connections {
    /// When the current attempt of in-flight client `idx` times out.
    fn attempt_deadline(&self, idx: usize) -> u64 {
        let c = &self.clients[idx];
        c.attempt.started
            + match (c.state, self.greets) {
                (State::Greeting, None) => GREETING_PROBE,
                (State::Greeting, _) if c.attempt.poked => GREETING_TIMEOUT,
                (State::Greeting, _) => GREETING_POKE,
                (State::Joining, _) => JOIN_TIMEOUT,
                _ => CONNECT_ATTEMPT_TIMEOUT,
            }
    }

    /// The next time the connect phase has something to do by the clock.
    pub fn next_deadline(&self) -> u64 {
        let retries = self.retries.iter().map(|&(at, _)| at);
        let attempts = self.in_flight.iter().map(|&i| self.attempt_deadline(i));
        let stale = self.stale.iter().map(|&(_, since)| since + STALE_MAX);
        retries
            .chain(attempts)
            .chain(stale)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// `clients` are to be connected in this order (the slow client last,
    /// after every healthy one; a burst's clients later, by `begin_burst`).
    pub fn begin(&mut self, clients: impl Iterator<Item = usize>) {
        self.queue = clients.collect();
    }

    /// `clients` connect all at once (the latency scenario's burst),
    /// stepped like the connect phase.
    pub fn begin_burst(&mut self, clients: std::ops::Range<usize>) {
        self.parallel = clients.len().max(1);
        self.queue = clients.collect();
    }

    /// One round of the connect phase, which began at `start` and must end
    /// by `deadline`: retries, timeouts, new attempts. True when it is over.
    pub fn step(&mut self, now: u64, start: u64, deadline: u64) -> bool {
        self.requeue_retries(now);
        self.handle_hung(now);
        // A server that refuses everything: stop after a few rounds of
        // failures instead of grinding through every client.
        let give_up = self.st.failed as usize >= 3 * self.parallel;
        if now >= deadline || give_up {
            self.abandon(now, start, give_up);
            return true;
        }
        let parallel = if self.greets.is_some() {
            self.parallel
        } else {
            1
        };
        while self.in_flight.len() < parallel {
            let Some(idx) = self.queue.pop_front() else {
                break;
            };
            self.start(idx, now);
        }
        self.finished(now)
    }

    /// Retries whose backoff has passed go to the front of the queue.
    fn requeue_retries(&mut self, now: u64) {
        let mut k = 0;
        while k < self.retries.len() {
            if self.retries[k].0 <= now {
                let (_, idx) = self.retries.swap_remove(k);
                self.queue.push_front(idx);
            } else {
                k += 1;
            }
        }
    }

    /// Attempts that have hung too long: decide whether the server greets,
    /// poke a ghost, let a poked one wait without a slot, or retry.
    fn handle_hung(&mut self, now: u64) {
        let hung: Vec<usize> = self
            .in_flight
            .iter()
            .copied()
            .filter(|&i| now >= self.attempt_deadline(i))
            .collect();
        for idx in hung {
            let c = &mut self.clients[idx];
            if c.state == State::Greeting && self.greets.is_none() {
                self.greets = Some(false);
                log(format_args!(
                    "no greeting from the server: a connection counts once established (with TLS: once its handshake is done)"
                ));
                if self.handshake_done(idx) {
                    self.promote(idx);
                } else {
                    self.fail(idx, io::Error::from(ErrorKind::TimedOut), true, now);
                }
            } else if c.state == State::Greeting && !c.attempt.poked {
                // Established on our side, no greeting: most likely a
                // SYN-cookie connection that met a full accept queue. Data
                // makes the server's kernel create it (retransmitted until
                // the queue has room); closing it instead can kill a server
                // that fails on a connection reset before accept() (ncat
                // quits on that).
                c.attempt.poked = true;
                c.attempt.started = now;
                c.queue(b"\n");
                self.st.pokes += 1;
                self.flush(idx);
            } else if c.state == State::Greeting {
                self.go_stale(idx, now);
            } else if c.state == State::Joining {
                let e = io::Error::other(format!(
                    "no `*** <n> here:` answer to /join within {} s (does the server have rooms?)",
                    JOIN_TIMEOUT / 1_000_000_000
                ));
                self.fail(idx, e, false, now);
            } else {
                self.fail(idx, io::Error::from(ErrorKind::TimedOut), true, now);
            }
        }
    }

    /// Poked and still nothing. Closing it could still kill ncat, so it
    /// stays open and read, but stops holding a connect slot.
    fn go_stale(&mut self, idx: usize, now: u64) {
        if let Some(p) = self.in_flight.iter().position(|&i| i == idx) {
            self.in_flight.swap_remove(p);
        }
        self.stale.push((idx, now));
        self.st.stale += 1;
        if self.st.stale <= 3 {
            log(format_args!(
                "client {idx}: established but no greeting even after a poke; waiting on"
            ));
        }
    }

    /// Out of time, or too many failures: count everything not connected.
    fn abandon(&mut self, now: u64, start: u64, give_up: bool) {
        let mut left = 0;
        for idx in self
            .queue
            .drain(..)
            .chain(self.retries.drain(..).map(|r| r.1))
        {
            self.clients[idx].state = State::Failed;
            left += 1;
        }
        let pending: Vec<usize> = mem::take(&mut self.in_flight)
            .into_iter()
            .chain(self.stale.drain(..).map(|s| s.0))
            .collect();
        for idx in pending {
            let c = &mut self.clients[idx];
            if c.state == State::Greeting {
                // Established, not greeted: leave it open (see above).
                c.attempt.given_up = true;
                self.st.failed += 1;
                continue;
            }
            c.state = State::Failed;
            self.bury(idx);
            left += 1;
        }
        self.st.not_attempted += left;
        if !give_up {
            self.st.timed_out = Some((now - start) as f64 / SEC);
        }
        let why = if give_up {
            "too many failed connects"
        } else {
            "connect timeout"
        };
        log(format_args!(
            "{why}: {} connected, {} failed, {left} abandoned",
            self.st.connected_ever, self.st.failed
        ));
    }

    /// Is everything connected or given up? Stale connections are waited
    /// for up to `STALE_MAX` each, then counted as failed (still open).
    fn finished(&mut self, now: u64) -> bool {
        let done = self.queue.is_empty()
            && self.retries.is_empty()
            && self.in_flight.is_empty()
            && self
                .stale
                .iter()
                .all(|&(_, since)| now >= since + STALE_MAX);
        if done {
            for (idx, _) in mem::take(&mut self.stale) {
                self.clients[idx].attempt.given_up = true;
                self.st.failed += 1;
            }
        }
        done
    }

    /// A one-line account of connections that failed or were closed, if any.
    pub fn status(&self, clients_wanted: usize) -> Option<String> {
        let failed = self.failed();
        if let Some(t) = self.st.timed_out {
            return Some(format!(
                "connect timeout: {} of {} connected after {t:.0} s",
                self.st.connected_ever,
                self.clients.len()
            ));
        }
        if failed > 0 {
            return Some(format!(
                "refused after {} clients ({failed} of {} could not connect)",
                self.st.connected_ever,
                self.clients.len()
            ));
        }
        let closed = self.count(|c| !c.slow && c.state == State::Closed);
        if closed > 0 {
            return Some(format!(
                "server closed {closed} of {clients_wanted} clients"
            ));
        }
        None
    }
}
