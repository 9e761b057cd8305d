//! One connected client: its socket, its buffers, and where it is in its life.
//!
//! The struct is kept small on purpose: ten thousand idle clients should cost
//! a few megabytes. Buffers are allocated only while bytes are pending, the
//! name is the only other heap allocation, and flags are single bytes.

use std::net::IpAddr;

use mio::net::TcpStream;

use crate::line_buffer::LineBuffer;
use crate::out_queue::OutQueue;
use crate::rate::TokenBucket;
use crate::stats::CloseReason;

/// Where a client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connected under `--ask-name`, not yet named: gets only its own prompts
    /// and is not announced to anyone.
    Naming,
    /// In the room: receives broadcasts, its lines are handled.
    Joined,
    /// Leaving: its remaining output is flushed (for at most a linger time),
    /// nothing is read or broadcast to it any more, then it is closed.
    Closing,
}

/// A connected client.
#[derive(Debug)]
pub struct Client {
    pub socket: TcpStream,
    /// The peer's address, IPv4-mapped IPv6 shown as IPv4 (as Go does).
    pub ip: IpAddr,
    /// How others see this client: its address (`127.0.0.1:64208`,
    /// `[::1]:50000`) until it takes a name.
    pub who: Box<str>,
    /// Input received but not yet handled.
    pub input: LineBuffer,
    /// Output waiting to be written.
    pub output: OutQueue,
    pub phase: Phase,
    /// Connection number, unique for the server's life: tells a reused slab
    /// slot from the client that had it before (in timers).
    pub id: u64,
    /// Order of joining, for `/who`.
    pub joined_seq: u64,
    /// Offset in the turn arena from which broadcasts are still to be queued
    /// for this client; valid only while `mark_turn` is the current turn
    /// (otherwise the client takes the arena from its start).
    pub mark: u32,
    pub mark_turn: u32,
    /// The turn in which the socket was last read: a client is read at most
    /// once per turn, so the per-turn read budget holds.
    pub read_turn: u32,
    /// Lines this client may send now.
    pub bucket: TokenBucket,
    /// Server-clock milliseconds of the last line received (for the idle
    /// timeout), or of the connect.
    pub last_heard_ms: u64,
    /// While `Closing`: when to give up flushing and close anyway.
    pub close_by_ms: u64,
    /// Lines skipped under `--slow-client drop`, in all.
    pub skipped_total: u64,
    /// Lines skipped and not yet reported to the client.
    pub skipped_unreported: u64,
    /// Why it is being closed, once that is decided.
    pub close_reason: Option<CloseReason>,
    /// The socket may have unread bytes (edge-triggered readiness was seen
    /// and reading stopped before `WouldBlock`).
    pub readable: bool,
    /// The last write hit `WouldBlock`; wait for a writable event.
    pub write_blocked: bool,
    /// `WRITABLE` is registered with the poller (only while output waits).
    pub write_interest: bool,
    /// In the server's flush list for this turn.
    pub dirty: bool,
    /// Reading stopped until the rate bucket refills.
    pub throttled: bool,
    /// Under `--slow-client drop`: lines are being skipped until the queue
    /// drains below half the cap.
    pub skipping: bool,
    /// To be removed after this turn; nothing more is read or queued.
    pub doomed: bool,
}

impl Client {
    pub fn new(
        socket: TcpStream,
        ip: IpAddr,
        who: Box<str>,
        id: u64,
        bucket: TokenBucket,
        now_ms: u64,
    ) -> Client {
        Client {
            socket,
            ip,
            who,
            input: LineBuffer::default(),
            output: OutQueue::default(),
            phase: Phase::Naming,
            id,
            joined_seq: 0,
            mark: 0,
            mark_turn: 0,
            read_turn: u32::MAX,
            bucket,
            last_heard_ms: now_ms,
            close_by_ms: 0,
            skipped_total: 0,
            skipped_unreported: 0,
            close_reason: None,
            readable: false,
            write_blocked: false,
            write_interest: false,
            dirty: false,
            throttled: false,
            skipping: false,
            doomed: false,
        }
    }

    /// True if broadcasts are queued for this client.
    pub fn receives(&self) -> bool {
        self.phase == Phase::Joined && !self.doomed
    }

    /// Where this client's share of the arena starts in `turn`.
    pub fn region_start(&self, turn: u32) -> usize {
        if self.mark_turn == turn {
            self.mark as usize
        } else {
            0
        }
    }
}

/// Formats a peer address as Go's `RemoteAddr().String()` does:
/// `127.0.0.1:64208`, `[::1]:50000`, and IPv4-mapped IPv6 as plain IPv4.
pub fn who_from_addr(addr: std::net::SocketAddr) -> String {
    let ip = addr.ip().to_canonical();
    std::net::SocketAddr::new(ip, addr.port()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_as_go_prints_them() {
        assert_eq!(
            who_from_addr("127.0.0.1:64208".parse().unwrap()),
            "127.0.0.1:64208"
        );
        assert_eq!(who_from_addr("[::1]:50000".parse().unwrap()), "[::1]:50000");
        assert_eq!(
            who_from_addr("[::ffff:10.0.0.1]:7".parse().unwrap()),
            "10.0.0.1:7"
        );
    }

    #[test]
    fn a_client_stays_small() {
        // Idle clients are dominated by this struct (plus its name); keep it
        // well under the 512 bytes per idle client we promise, slab slack
        // included.
        assert!(
            std::mem::size_of::<Client>() <= 224,
            "{}",
            std::mem::size_of::<Client>()
        );
    }
}
