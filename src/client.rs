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
    /// The source `--max-per-ip` counts this client under: its IPv4 address,
    /// or its IPv6 address's `--per-ip-prefix-v6` prefix.
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
    /// Bytes queued for this client alone (not broadcasts) in turn
    /// `private_turn`; what the per-turn budget checks private lines against.
    pub private_bytes: u32,
    pub private_turn: u32,
    /// Lines this client may send now.
    pub bucket: TokenBucket,
    /// Server-clock milliseconds of the last line received (for the idle
    /// timeout), or of the connect.
    pub last_heard_ms: u64,
    /// While `Closing`: when to give up flushing and close anyway.
    pub close_by_ms: u64,
    /// When its socket last took a byte (or it had nothing to take): a
    /// client stalled long during a pause of reading is closed.
    pub last_write_ms: u64,
    /// Lines skipped under `--slow-client drop`, in all.
    pub skipped_total: u32,
    /// Lines skipped and not yet reported to the client.
    pub skipped_unreported: u32,
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
    /// The peer closed its side; once its last lines are handled it leaves.
    pub eof: bool,
}

impl Client {
    pub fn new(
        socket: TcpStream,
        ip: IpAddr,
        who: Box<str>,
        id: u64,
        bucket: TokenBucket,
        now_ms: u64,
        output: OutQueue,
    ) -> Client {
        Client {
            socket,
            ip,
            who,
            input: LineBuffer::default(),
            output,
            phase: Phase::Naming,
            id,
            joined_seq: 0,
            mark: 0,
            mark_turn: 0,
            read_turn: u32::MAX,
            private_bytes: 0,
            private_turn: u32::MAX,
            bucket,
            last_heard_ms: now_ms,
            close_by_ms: 0,
            last_write_ms: now_ms,
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
            eof: false,
        }
    }

    /// True if broadcasts are queued for this client.
    pub fn receives(&self) -> bool {
        self.phase == Phase::Joined && !self.doomed
    }

    /// Counts lines skipped under `--slow-client drop`.
    pub fn skip(&mut self, lines: u64) {
        let lines = lines.min(u32::MAX as u64) as u32;
        self.skipped_unreported = self.skipped_unreported.saturating_add(lines);
        self.skipped_total = self.skipped_total.saturating_add(lines);
    }

    /// Bytes queued for this client alone in `turn`.
    pub fn private_in(&self, turn: u32) -> usize {
        if self.private_turn == turn {
            self.private_bytes as usize
        } else {
            0
        }
    }

    /// Counts `n` more bytes queued for this client alone in `turn`; returns
    /// the turn's total so far.
    pub fn add_private(&mut self, turn: u32, n: usize) -> usize {
        if self.private_turn != turn {
            self.private_turn = turn;
            self.private_bytes = 0;
        }
        self.private_bytes = self
            .private_bytes
            .saturating_add(n.min(u32::MAX as usize) as u32);
        self.private_bytes as usize
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

/// The source a connection from `ip` is counted under for `--max-per-ip`:
/// an IPv4 address (IPv4-mapped IPv6 included) is its own source; an IPv6
/// address is grouped by its first `v6_prefix` bits, because one host or
/// one customer usually holds a whole /64 and could otherwise open as many
/// connections as it has addresses.
pub fn source_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = match v6_prefix {
                0 => 0,
                p => u128::MAX << (128 - u32::from(p.min(128))),
            };
            IpAddr::V6((bits & mask).into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_group_ipv6_by_prefix_and_keep_ipv4_whole() {
        let key = |s: &str, p| source_key(s.parse().unwrap(), p);
        assert_eq!(
            key("2001:db8:1:2:aaaa::1", 64),
            key("2001:db8:1:2:ffff::9", 64)
        );
        assert_ne!(key("2001:db8:1:2::1", 64), key("2001:db8:1:3::1", 64));
        assert_eq!(key("2001:db8:1:2::1", 48), key("2001:db8:1:3::1", 48));
        assert_ne!(key("2001:db8::1", 128), key("2001:db8::2", 128));
        assert_eq!(key("2001:db8::1", 0), key("::", 0));
        assert_ne!(key("10.0.0.1", 64), key("10.0.0.2", 64));
        assert_eq!(key("::ffff:10.0.0.1", 64), key("10.0.0.1", 64));
    }

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
        // under the 300 bytes per idle client we aim for, slab slack and the
        // name's allocation included.
        assert!(
            std::mem::size_of::<Client>() <= 240,
            "{}",
            std::mem::size_of::<Client>()
        );
    }
}
