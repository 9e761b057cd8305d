//! One client's connection: reading into its line buffer, flushing its
//! queue, write interest on and off, and the clean close.
//!
//! mio is edge-triggered: a readable or writable event comes once, so a
//! connection reads until `WouldBlock` (or its budget) and remembers in
//! `readable` that bytes may remain; it writes until its queue is empty or
//! the socket is full, and only then asks for `WRITABLE` events — never
//! while nothing waits.

use std::io::{self, Read as _};

use mio::{Interest, Registry, Token};

use crate::admission::Slot;
use crate::limits::DRAIN_BUDGET;
use crate::line_buffer::LineBuffer;
use crate::out_queue::{FlushReport, Flushed, OutQueue, WriteLimits};
use crate::rate::TokenBucket;
use crate::stats::CloseReason;
use crate::transport::Transport;

/// A connected client's I/O state.
#[derive(Debug)]
pub struct Connection {
    pub transport: Transport,
    /// Its place under `--max-clients` and `--max-per-ip`, given back when
    /// the connection is dropped.
    _slot: Slot,
    /// Connection number: tells a reused slab slot from the client that had
    /// it before (in timers).
    pub id: u32,
    /// Input received but not yet handled.
    pub input: LineBuffer,
    /// Lines it may send now.
    pub bucket: TokenBucket,
    /// When its last line was handled (or it connected): for the idle
    /// timeout.
    pub last_heard_ms: u64,
    /// When its socket last took a byte (or had nothing to take): a client
    /// stalled long during a pause of reading is closed.
    pub last_write_ms: u64,
    /// While leaving: when to close it whatever is left unsent.
    pub leave_by_ms: Option<u64>,
    /// Why it is being closed, once that is decided.
    pub close_reason: Option<CloseReason>,
    /// The turn in which it was last read: at most once per turn, so the
    /// per-turn read budget holds.
    pub read_turn: u32,
    /// The socket may have unread bytes (readiness was seen and reading
    /// stopped before `WouldBlock`).
    pub readable: bool,
    /// The last write hit `WouldBlock`; wait for a writable event.
    pub write_blocked: bool,
    /// `WRITABLE` is registered with the poller (only while output waits).
    pub write_interest: bool,
    /// Reading stopped until the rate bucket refills.
    pub throttled: bool,
    /// The peer closed its side; once its last lines are handled it leaves.
    pub eof: bool,
    /// In a cluster: it asked for a name and waits for the answer; nothing
    /// more is read from it until then.
    pub awaiting: bool,
    /// To be removed after this turn; nothing more is read or written.
    pub doomed: bool,
}

/// What one read call brought.
#[derive(Debug)]
pub enum Read {
    /// This many bytes, at the start of the buffer read into.
    Bytes(usize),
    /// Nothing now (`WouldBlock`).
    Empty,
    /// End of input.
    Eof,
    /// The connection failed.
    Failed(io::Error),
}

impl Connection {
    pub fn new(
        transport: Transport,
        slot: Slot,
        id: u32,
        bucket: TokenBucket,
        now_ms: u64,
    ) -> Connection {
        Connection {
            transport,
            _slot: slot,
            id,
            input: LineBuffer::default(),
            bucket,
            last_heard_ms: now_ms,
            last_write_ms: now_ms,
            leave_by_ms: None,
            close_reason: None,
            read_turn: u32::MAX,
            // Bytes may be waiting already: readiness may have fired before
            // registration, so it is read on its first turn.
            readable: true,
            write_blocked: false,
            write_interest: false,
            throttled: false,
            eof: false,
            awaiting: false,
            doomed: false,
        }
    }

    /// True while it is leaving (its output flushes, nothing is read).
    pub fn leaving(&self) -> bool {
        self.leave_by_ms.is_some()
    }

    /// One read call into `scratch`.
    pub fn read_some(&mut self, scratch: &mut [u8]) -> Read {
        loop {
            return match self.transport.read(scratch) {
                Ok(0) => {
                    self.readable = false;
                    self.eof = true;
                    Read::Eof
                }
                Ok(n) => Read::Bytes(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    Read::Empty
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.readable = false;
                    Read::Failed(e)
                }
            };
        }
    }

    /// Writes what the socket takes now from `queue`, and turns `WRITABLE`
    /// interest on while bytes remain and off once they are gone. A failed
    /// interest change is an error like a failed write: the client would
    /// otherwise wait for an event that never comes.
    pub fn flush(
        &mut self,
        queue: &mut OutQueue,
        arena: &[u8],
        limits: WriteLimits,
        registry: &Registry,
        token: Token,
        now_ms: u64,
    ) -> FlushReport {
        if self.write_blocked && (!queue.is_empty() || self.transport.has_pending()) {
            // Waiting for a writable event.
            return FlushReport {
                how: Flushed::Blocked,
                written: 0,
                short_writes: 0,
            };
        }
        let mut report = queue.write_to(&mut self.transport, arena, limits);
        if matches!(report.how, Flushed::Drained) {
            // The transport's own bytes (TLS ciphertext of the last records,
            // handshake messages) must get out too.
            match self.transport.flush_pending() {
                Ok(false) => {}
                Ok(true) => report.how = Flushed::Blocked,
                Err(e) => report.how = Flushed::Failed(e),
            }
        }
        if report.written > 0 || queue.is_empty() {
            self.last_write_ms = now_ms;
        }
        let want_write = match report.how {
            Flushed::Drained => false,
            Flushed::Blocked => {
                self.write_blocked = true;
                true
            }
            Flushed::OutOfBudget | Flushed::Failed(_) => return report,
        };
        if want_write != self.write_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match registry.reregister(self.transport.source(), token, interest) {
                Ok(()) => self.write_interest = want_write,
                Err(e) => {
                    report.how = Flushed::Failed(io::Error::new(
                        e.kind(),
                        format!("cannot change its poll interest: {e}"),
                    ))
                }
            }
        }
        report
    }

    /// Closes our side cleanly once everything is written. Input it sent
    /// that we never read (a throttled paste, lines after `/quit`) is read
    /// away first, up to [`DRAIN_BUDGET`]: closing a socket with unread
    /// input sends a reset instead of a FIN, and the kernel then discards
    /// whatever it has not yet delivered of the output we just flushed.
    /// The socket itself is read, not the transport: TLS input that nobody
    /// will see need not be decrypted.
    pub fn close_cleanly(&mut self, scratch: &mut [u8]) {
        self.transport.shutdown_write();
        let socket = self.transport.source();
        let mut budget = DRAIN_BUDGET;
        while budget > 0 {
            match socket.read(scratch) {
                Ok(n) if n > 0 => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => break, // End of input, WouldBlock or an error.
            }
        }
    }
}

/// Sets a freshly accepted socket's options: no Nagle delay (chat lines are
/// small and latency matters more than packet count; our own coalescing
/// batches a turn's output into one write), and `--sndbuf` if given.
pub fn configure(socket: &mio::net::TcpStream, sndbuf: Option<usize>) -> io::Result<()> {
    socket.set_nodelay(true)?;
    if let Some(size) = sndbuf {
        socket2::SockRef::from(socket).set_send_buffer_size(size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_stays_small() {
        // With its member, an idle client should cost under 300 bytes.
        let size = std::mem::size_of::<Connection>();
        assert!(size <= 136, "{size}");
        let member = std::mem::size_of::<crate::member::Member>();
        assert!(size + member <= 248, "{size} + {member}");
    }
}
